"""Celery tasks of the alarms app: thin wrappers around the services."""

from celery import shared_task

from pandamon.workers import recorded_run

from .services import notifications


@shared_task(name="alarms.send_job_notifications")
def send_job_notifications():
    with recorded_run("alarms.send_job_notifications") as counts:
        counts["mails"] = notifications.send_job_notifications()

"""Celery tasks of the alarms app: thin wrappers around the services."""

from celery import shared_task

from pandamon.workers import recorded_run

from . import rules
from .services import alarm_mail, history, notifications


@shared_task(name="alarms.send_job_notifications")
def send_job_notifications():
    with recorded_run(send_job_notifications.name) as counts:
        counts["mails"] = notifications.send_job_notifications()


@shared_task(name="alarms.evaluate_rules")
def evaluate_rules():
    with recorded_run(evaluate_rules.name) as counts:
        counts.update(rules.evaluate())
        counts["mails"] = alarm_mail.mail_alarms()


@shared_task(name="alarms.snapshot_jobs")
def snapshot_jobs():
    with recorded_run(snapshot_jobs.name) as counts:
        counts["rows"] = history.take_snapshot()


@shared_task(name="alarms.snapshot_dataflow")
def snapshot_dataflow():
    with recorded_run(snapshot_dataflow.name) as counts:
        counts.update(history.take_dataflow_snapshot())

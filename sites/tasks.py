"""Celery tasks of the sites app: thin wrappers around services."""

from celery import shared_task

from pandamon.workers import recorded_run

from . import services


@shared_task(name="sites.measure_storage_space", ignore_result=True)
def measure_storage_space():
    with recorded_run(measure_storage_space.name) as counts:
        counts.update(services.measure_storage_space())

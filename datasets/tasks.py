"""Celery tasks of the catalog: thin wrappers around services."""

from celery import shared_task

from pandamon.workers import recorded_run

from .services import catalog


@shared_task(name="datasets.purge_erased_datasets", ignore_result=True)
def purge_erased_datasets():
    """Delete, in batches, datasets erased longer ago than the grace period (with their files' memberships)."""
    with recorded_run(purge_erased_datasets.name) as counts:
        counts["purged"] = catalog.purge_erased_datasets()

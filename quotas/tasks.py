"""Celery tasks of the quotas app: thin wrappers around the services."""

from celery import shared_task

from pandamon.workers import recorded_run

from .services import accounting, reconcile, throttle


@shared_task(name="quotas.fold_job_events")
def fold_job_events():
    with recorded_run(fold_job_events.name) as counts:
        counts["folded"] = accounting.fold_everything()


@shared_task(name="quotas.reconcile")
def reconcile_usage():
    with recorded_run(reconcile_usage.name) as counts:
        drift = reconcile.reconcile()
        counts["live_accounts_drifted"] = len(drift["live"])
        counts["daily_rows_drifted"] = len(drift["daily"])
        counts["drift"] = {**drift["live"], **drift["daily"]}


@shared_task(name="quotas.apply_running_limits")
def apply_running_limits():
    with recorded_run(apply_running_limits.name) as counts:
        counts.update(throttle.apply_running_limits())

"""Celery tasks: thin wrappers that take ids and call services."""

from celery import shared_task

from pandamon.workers import recorded_run

from .services import adder, brokerage, peek, setupper, watchers


@shared_task(name="jobs.broker_defined_jobs", ignore_result=True)
def broker_defined_jobs():
    with recorded_run(broker_defined_jobs.name) as counts:
        counts.update(brokerage.broker_defined_jobs())


@shared_task(name="jobs.finalize_job", ignore_result=True, acks_late=True)
def finalize_job(pandaid):
    adder.finalize_job(pandaid)


@shared_task(name="jobs.watch_lost_heartbeats", ignore_result=True)
def watch_lost_heartbeats():
    with recorded_run(watch_lost_heartbeats.name) as counts:
        counts.update(watchers.fail_lost_heartbeats())


@shared_task(name="jobs.watch_timeouts", ignore_result=True)
def watch_timeouts():
    with recorded_run(watch_timeouts.name) as counts:
        counts.update(watchers.fail_sent_timeouts())
        counts.update(watchers.fail_holding_timeouts())


@shared_task(name="jobs.watch_queued_timeouts", ignore_result=True)
def watch_queued_timeouts():
    """Jobs queued too long: defined → failed; assigned / activated → reassigned (closed + new attempt)."""
    with recorded_run(watch_queued_timeouts.name) as counts:
        counts.update(watchers.fail_defined_timeouts())
        counts.update(watchers.reassign_assigned_timeouts())
        counts.update(watchers.reassign_activated_timeouts())


@shared_task(name="jobs.retry_stuck_holding", ignore_result=True)
def retry_stuck_holding():
    with recorded_run(retry_stuck_holding.name) as counts:
        ids = watchers.stuck_holding_ids()
        for pandaid in ids:
            adder.finalize_job(pandaid)
        counts["finalized"] = len(ids)


@shared_task(name="jobs.clean_dispatch_datasets", ignore_result=True)
def clean_dispatch_datasets():
    """Erase dispatch blocks whose jobs are all over; their replicas are left to the reaper."""
    with recorded_run(clean_dispatch_datasets.name) as counts:
        counts.update(setupper.clean_dispatch_blocks())


@shared_task(name="jobs.expire_peek_requests", ignore_result=True)
def expire_peek_requests():
    """Peek requests no pilot will answer (the job ended, or its pilot ignores them) stop being pending."""
    with recorded_run(expire_peek_requests.name) as counts:
        counts["expired"] = peek.expire_stale()

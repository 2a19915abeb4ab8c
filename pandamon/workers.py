"""Recording periodic worker runs (WorkerRun rows)."""

import logging
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from .models import WorkerRun

logger = logging.getLogger(__name__)


@contextmanager
def recorded_run(name):
    """Record one run of a periodic worker; the body fills the `counts` dict it is given.

    The row is written in autocommit mode, outside the body's transactions, so a failed
    run is still recorded with its error.
    """
    run = WorkerRun.objects.create(name=name, started_at=timezone.now())
    counts = {}
    try:
        yield counts
    except Exception as exc:
        logger.exception("worker %s failed", name)
        _finish(run, WorkerRun.Status.FAILED, counts, f"{type(exc).__name__}: {exc}")
        raise
    _finish(run, WorkerRun.Status.DONE, counts, "")


def _finish(run, status, counts, error):
    WorkerRun.objects.filter(pk=run.pk).update(
        status=status, finished_at=timezone.now(), counts=counts, error=error[:2000]
    )


def latest_runs():
    """{worker name: its newest WorkerRun}: one indexed query per name (there are a dozen names)."""
    names = WorkerRun.objects.values_list("name", flat=True).distinct()
    return {name: WorkerRun.objects.filter(name=name).order_by("-started_at").first() for name in names}


def allowed_silence(period):
    """How long a periodic worker may go without starting before it counts as late: a few of its periods
    (PANDA_ALARM_WORKER_MISSED_PERIODS), at least PANDA_ALARM_WORKER_MIN_MINUTES."""
    return max(period * settings.PANDA_ALARMS["WORKER_MISSED_PERIODS"],
               timedelta(minutes=settings.PANDA_ALARMS["WORKER_MIN_MINUTES"]))  # fmt: skip


def periodic_workers():
    """[(task name, period)] of every periodic worker Celery beat runs."""
    return [(entry["task"], entry["schedule"]) for entry in settings.CELERY_BEAT_SCHEDULE.values()]

"""Watchers (PanDA's copyArchive/Watcher): fail jobs whose pilot went silent.

Each watcher handles a bounded batch per call, locks what it changes with
SKIP LOCKED (so two concurrent runs split the work instead of colliding), and
is safe to run twice.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from sites.models import Site

from ..choices import FileStatus, FileType, JobStatus
from ..models import Job, JobFile
from . import retry, state

LOST_HEARTBEAT = 100
SENT_TIMEOUT = 102
HOLDING_TIMEOUT = 103
HEARTBEAT_STATES = (JobStatus.STARTING, JobStatus.RUNNING, JobStatus.TRANSFERRING, JobStatus.MERGING)


def fail_lost_heartbeats(*, now=None):
    """Running jobs with no pilot update for their site's heartbeat timeout → failed (code 100)."""
    now = now or timezone.now()
    failed = 0
    for site in Site.objects.only("pk", "heartbeat_timeout_s"):
        cutoff = now - timedelta(seconds=site.heartbeat_timeout_s)
        stale = Job.objects.filter(computing_site=site, status__in=HEARTBEAT_STATES, modification_time__lt=cutoff)
        diag = f"lost heartbeat: no pilot update for more than {site.heartbeat_timeout_s} s"
        failed += _fail(stale, code=LOST_HEARTBEAT, diag=diag, now=now)
    return {"lost_heartbeat": failed}


def fail_sent_timeouts(*, now=None):
    """Jobs a pilot took but never reported on → failed (code 102)."""
    now = now or timezone.now()
    timeout = settings.PANDA["SENT_TIMEOUT"]
    stale = Job.objects.filter(status=JobStatus.SENT, modification_time__lt=now - timedelta(seconds=timeout))
    diag = f"sent timeout: no reply from the pilot within {timeout // 60} min"
    return {"sent_timeout": _fail(stale, code=SENT_TIMEOUT, diag=diag, now=now)}


def fail_holding_timeouts(*, now=None):
    """Holding jobs the Adder never finished → failed (code 103); high-priority ones sooner."""
    now = now or timezone.now()
    normal = settings.PANDA["HOLDING_TIMEOUT"]
    urgent = settings.PANDA["HOLDING_TIMEOUT_HIGH_PRIORITY"]
    holding = Job.objects.filter(status=JobStatus.HOLDING)
    stale_urgent = holding.filter(current_priority__gte=800, modification_time__lt=now - timedelta(seconds=urgent))
    stale = holding.filter(modification_time__lt=now - timedelta(seconds=normal))
    diag = "holding timeout: outputs were not processed in time"
    count = _fail(stale_urgent, code=HOLDING_TIMEOUT, diag=diag, now=now)
    count += _fail(stale, code=HOLDING_TIMEOUT, diag=diag, now=now)
    return {"holding_timeout": count}


def stuck_holding_ids(*, now=None, limit=1000):
    """Holding jobs whose Adder should have run by now (its queue message may have been lost)."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.PANDA["ADDER_RETRY_AFTER"])
    return list(
        Job.objects.filter(status=JobStatus.HOLDING, modification_time__lt=cutoff)
        .order_by("modification_time")
        .values_list("pandaid", flat=True)[:limit]
    )


def _fail(queryset, *, code, diag, now):
    with transaction.atomic():
        jobs = list(queryset.order_by("pandaid").select_for_update(skip_locked=True)[: settings.PANDA["WATCHER_BATCH"]])
        if not jobs:
            return 0
        state.transition_many(
            jobs, JobStatus.FAILED, actor="watcher", reason=diag, now=now,
            job_dispatcher_error_code=code, job_dispatcher_error_diag=diag[:250],
            end_time=F("modification_time"),
        )  # fmt: skip
        JobFile.objects.filter(job__in=jobs, type__in=(FileType.OUTPUT, FileType.LOG)).update(status=FileStatus.FAILED)
    for job in jobs:
        job.job_dispatcher_error_code = code
        retry.retry_if_eligible(job)
    return len(jobs)

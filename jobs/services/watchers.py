"""Watchers (PanDA's copyArchive/Watcher): fail jobs whose pilot went silent, and move on jobs
stuck in a queued state (defined, assigned, activated) beyond their timeouts.

Each watcher handles a bounded batch per call, locks what it changes with
SKIP LOCKED (so two concurrent runs split the work instead of colliding), and
is safe to run twice.
"""

from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from sites.models import Site

from ..choices import FileStatus, FileType, JobStatus
from ..models import Job, JobFile
from . import brokerage, retry, retry_rules, state

LOST_HEARTBEAT = 100
SENT_TIMEOUT = 102
HOLDING_TIMEOUT = 103
ASSIGNED_TIMEOUT = 107
ACTIVATED_TIMEOUT = 108
# brokerage NO_SITE (jobs.errorcodes.BROKERAGE): the code a defined job times out with when it has none.
BROKERAGE_NO_SITE = 100
# taskBufferErrorCode of a job closed for reassignment (jobs.errorcodes.TASK_BUFFER).
REASSIGNED = 105
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
        _retry(jobs, code=code)
    return len(jobs)


def _retry(jobs, *, code=None):
    """The retry rules' decisions, in the failing transaction (see jobs/services/adder.py)."""
    rules = retry_rules.active_rules()
    for job in jobs:
        if code is not None:
            job.job_dispatcher_error_code = code
        retry.retry_if_eligible(job, rules=rules)


# -- queued too long (copyArchive's TIMEOUT_defined / assigned / activated) --------------------------


def fail_defined_timeouts(*, now=None):
    """Defined jobs the brokerage has tried but placed nowhere for DEFINED_TIMEOUT → failed, with the
    last brokerage diagnostic. (Jobs the brokerage never looked at are its problem, not theirs.)"""
    now = now or timezone.now()
    timeout = settings.PANDA["DEFINED_TIMEOUT"]
    # Jobs held by their owner's quota wait for room, however long: that is not a placement failure.
    stale = Job.objects.filter(status=JobStatus.DEFINED, brokered_at__isnull=False,
                               modification_time__lt=now - timedelta(seconds=timeout)).exclude(
                                   brokerage_error_code=brokerage.HELD)  # fmt: skip
    failed = 0
    with transaction.atomic():
        jobs = _lock_batch(stale)
        by_diag = defaultdict(list)
        for job in jobs:
            by_diag[(job.brokerage_error_code or BROKERAGE_NO_SITE, job.brokerage_error_diag)].append(job)
        for (code, last), group in by_diag.items():
            diag = f"defined timeout: no site took the job within {_hours(timeout)}: {last or 'no site fits'}"
            state.transition_many(group, JobStatus.FAILED, actor="watcher", reason=diag, now=now,
                                  brokerage_error_code=code, brokerage_error_diag=diag[:250])  # fmt: skip
            failed += len(group)
        _fail_outputs(jobs)
        _retry(jobs)
    return {"defined_timeout": failed}


def reassign_assigned_timeouts(*, now=None):
    """Assigned jobs whose input did not reach their site within ASSIGNED_TIMEOUT → closed and
    brokered again as a new attempt (failed instead once their attempts are used up)."""
    now = now or timezone.now()
    timeout = settings.PANDA["ASSIGNED_TIMEOUT"]
    stale = Job.objects.filter(status=JobStatus.ASSIGNED, modification_time__lt=now - timedelta(seconds=timeout))

    def diag(job, blocks):
        named = ", ".join(blocks[job.pandaid]) or "none recorded"
        return (f"assigned timeout: input not transferred to {_site_name(job)} within {_hours(timeout)} "
                f"(dispatch block {named})")  # fmt: skip

    return _reassign_or_fail(stale, code=ASSIGNED_TIMEOUT, diag=diag, now=now, name="assigned")


def reassign_activated_timeouts(*, now=None):
    """Activated jobs no pilot took within ACTIVATED_TIMEOUT → closed and brokered again as a new
    attempt (failed instead once their attempts are used up)."""
    now = now or timezone.now()
    timeout = settings.PANDA["ACTIVATED_TIMEOUT"]
    stale = Job.objects.filter(status=JobStatus.ACTIVATED, modification_time__lt=now - timedelta(seconds=timeout))

    def diag(job, blocks):
        return f"activated timeout: no pilot at {_site_name(job)} took the job within {_hours(timeout)}"

    return _reassign_or_fail(stale, code=ACTIVATED_TIMEOUT, diag=diag, now=now, name="activated")


def _reassign_or_fail(queryset, *, code, diag, now, name):
    """Close each stale job and create its next attempt for a new brokerage (PanDA: "closed" + a new
    job); a job whose attempts are used up (or whose task is aborted) fails instead."""
    counts = {f"{name}_reassigned": 0, f"{name}_failed": 0}
    with transaction.atomic():
        jobs = _lock_batch(queryset.select_related("computing_site"))
        blocks = _dispatch_blocks(jobs)
        tasks = {}
        for job in jobs:
            text = diag(job, blocks)
            if job.task_id not in tasks:
                tasks[job.task_id] = retry.task_of(job)
            task = tasks[job.task_id]
            refusal = _no_new_attempt(job, task)
            if refusal:
                state.transition(job, JobStatus.FAILED, actor="watcher", reason=f"{text}; not reassigned: {refusal}",
                                 now=now, job_dispatcher_error_code=code, job_dispatcher_error_diag=text[:250])  # fmt: skip
                counts[f"{name}_failed"] += 1
                continue
            state.transition(job, JobStatus.CLOSED, actor="watcher", reason=text, now=now,
                             job_dispatcher_error_code=code, job_dispatcher_error_diag=text[:250],
                             task_buffer_error_code=REASSIGNED, task_buffer_error_diag=f"reassigned: {text}"[:300])  # fmt: skip
            new = retry.retry_job(job, actor="watcher", keep_site=retry.pins_site(task), reason=f"reassigned: {text}")
            retry.annotate_last_change(job, f"reassigned as {new.pandaid}")
            counts[f"{name}_reassigned"] += 1
        _fail_outputs(jobs)
    return counts


def _no_new_attempt(job, task):
    if task is not None and task.status in retry.TASK_STATES_WITHOUT_RETRY:
        return f"its task {task.task_id} is {task.status}"
    if job.attempt_nr >= job.max_attempt:
        return f"attempt {job.attempt_nr} of at most {job.max_attempt}"
    return ""


def _lock_batch(queryset):
    return list(queryset.order_by("pandaid").select_for_update(skip_locked=True, of=("self",))[
        : settings.PANDA["WATCHER_BATCH"]])  # fmt: skip


def _dispatch_blocks(jobs):
    blocks = defaultdict(list)
    rows = (
        JobFile.objects.filter(job__in=jobs, type=FileType.INPUT)
        .exclude(dispatch_dblock="")
        .values_list("job_id", "dispatch_dblock")
        .distinct()
        .order_by("job_id", "dispatch_dblock")
    )
    for job_id, block in rows:
        blocks[job_id].append(block)
    return blocks


def _fail_outputs(jobs):
    JobFile.objects.filter(job__in=jobs, type__in=(FileType.OUTPUT, FileType.LOG)).update(status=FileStatus.FAILED)


def _site_name(job):
    return job.computing_site.name if job.computing_site_id else "its site"


def _hours(seconds):
    return f"{seconds / 3600:g} h"

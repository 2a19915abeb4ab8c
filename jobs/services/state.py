"""The job state machine (reference/panda-server.md §1.2), enforced in one place.

Callers lock the rows they change (select_for_update inside a transaction) and
then call `transition`; it refuses transitions the table does not allow, writes
the new state with a compare-and-set on the old one, and records each change in
JobStatusLog.
"""

from collections import defaultdict

from django.utils import timezone

from pandamon.errors import Conflict

from ..choices import FINAL_STATES, JobStatus
from ..models import Job, JobStatusLog

S = JobStatus
ALLOWED_TRANSITIONS = {
    S.PENDING: {S.DEFINED, S.CANCELLED, S.CLOSED},
    S.DEFINED: {S.ASSIGNED, S.ACTIVATED, S.WAITING, S.FAILED, S.CANCELLED, S.CLOSED},
    S.WAITING: {S.DEFINED, S.ASSIGNED, S.ACTIVATED, S.FAILED, S.CANCELLED, S.CLOSED},
    S.ASSIGNED: {S.ACTIVATED, S.FAILED, S.CANCELLED, S.CLOSED},
    S.ACTIVATED: {S.SENT, S.THROTTLED, S.FAILED, S.CANCELLED, S.CLOSED},
    S.THROTTLED: {S.ACTIVATED, S.CANCELLED, S.CLOSED},
    S.SENT: {S.STARTING, S.RUNNING, S.HOLDING, S.TRANSFERRING, S.FAILED, S.CANCELLED},
    S.STARTING: {S.RUNNING, S.HOLDING, S.TRANSFERRING, S.FAILED, S.CANCELLED},
    S.RUNNING: {S.HOLDING, S.TRANSFERRING, S.FAILED, S.CANCELLED},
    S.HOLDING: {S.FINISHED, S.FAILED, S.MERGING, S.TRANSFERRING, S.CANCELLED},
    S.MERGING: {S.FINISHED, S.FAILED, S.TRANSFERRING, S.CANCELLED},
    S.TRANSFERRING: {S.FINISHED, S.FAILED, S.CANCELLED},
    S.FINISHED: set(),
    S.FAILED: set(),
    S.CANCELLED: set(),
    S.CLOSED: set(),
}

# How far along the lifecycle a state is; a pilot report for an earlier state than
# the job's current one is late and must not roll the job back.
PROGRESS_RANK = {
    S.PENDING: 0,
    S.DEFINED: 1,
    S.WAITING: 1,
    S.ASSIGNED: 2,
    S.ACTIVATED: 3,
    S.THROTTLED: 3,
    S.SENT: 4,
    S.STARTING: 5,
    S.RUNNING: 6,
    S.HOLDING: 7,
    S.MERGING: 8,
    S.TRANSFERRING: 8,
    S.FINISHED: 9,
    S.FAILED: 9,
    S.CANCELLED: 9,
    S.CLOSED: 9,
}


class TransitionRefused(Conflict):
    pass


def is_allowed(old, new):
    return new in ALLOWED_TRANSITIONS.get(old, ())


def check_transition(job, new):
    if is_allowed(job.status, new):
        return
    if job.status in FINAL_STATES:
        raise TransitionRefused(f"job {job.pandaid} is already {job.status}; final states are final")
    raise TransitionRefused(f"job {job.pandaid} cannot go from {job.status} to {new}")


def transition(job, new, *, actor, reason="", now=None, **fields):
    """Move one (locked) job to `new`, setting `fields` too. Returns the updated instance."""
    transition_many([job], new, actor=actor, reason=reason, now=now, **fields)
    return job


def transition_many(jobs, new, *, actor, reason="", now=None, **fields):
    """Move several locked jobs to `new` with the same extra `fields`, in few statements.

    Jobs are grouped by their old state so each group is one compare-and-set UPDATE;
    a group whose row count comes back short means another writer changed a row the
    caller should have locked, and the whole transaction is refused.
    """
    if not jobs:
        return []
    now = now or timezone.now()
    for job in jobs:
        check_transition(job, new)
    values = {"status": new, "state_change_time": now, "modification_time": now, **fields}
    by_old_status = defaultdict(list)
    for job in jobs:
        by_old_status[job.status].append(job)
    for old, group in by_old_status.items():
        ids = [job.pandaid for job in group]
        updated = Job.objects.filter(pandaid__in=ids, status=old).update(**values)
        if updated != len(ids):
            raise Conflict(f"{len(ids) - updated} job(s) changed state concurrently; try again")
    JobStatusLog.objects.bulk_create(
        [
            JobStatusLog(
                job_id=job.pandaid,
                old_status=job.status,
                new_status=new,
                changed_at=now,
                actor=actor[:150],
                reason=reason[:500],
            )
            for job in jobs
        ]
    )
    plain_values = {name: value for name, value in values.items() if not hasattr(value, "resolve_expression")}
    for job in jobs:
        for name, value in plain_values.items():
            setattr(job, name, value)
    return jobs


def record_creation(jobs, *, actor, reason="submitted", now=None):
    """Log the initial state of newly inserted jobs."""
    now = now or timezone.now()
    JobStatusLog.objects.bulk_create(
        [
            JobStatusLog(
                job_id=job.pandaid,
                old_status="",
                new_status=job.status,
                changed_at=now,
                actor=actor[:150],
                reason=reason,
            )
            for job in jobs
        ]
    )

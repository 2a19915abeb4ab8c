"""Task roll-up: task counters and states follow the job state log, batch by batch, never recounted.

A consumer of the job state log (jobs/services/status_log.py) like quota accounting:
each change of a task's job moves one unit in the task's jobs_by_state; a finished
job marks its input pieces done; a failed job's pieces are failed unless a retry
took them (a new attempt's creation moves them to the new PandaID, un-failing them
if a person retried after they had been given up). Then each touched task's state
follows from its counters (tasks/services/status.py), or, when its first jobs all failed
for good and none succeeded, the task is broken and its live jobs are stopped.
"""

from collections import Counter, defaultdict

from django.db.models import F, Sum
from django.utils import timezone

from jobs.choices import JobStatus
from jobs.models import Job
from jobs.services.status_log import consume_batch

from ..choices import InputStatus
from ..models import Task, TaskInput
from . import actions, status

LOG_CURSOR = "task-rollup"
ENDED_BADLY = {JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.CLOSED}


def roll_up(*, batch=None, lag_seconds=None):
    """Fold the log until it is caught up; returns how many changes were folded."""
    folded = 0
    while n := consume_batch(LOG_CURSOR, job_fields=("task_id", "parent_id"), handle=_fold, batch=batch,
                             lag_seconds=lag_seconds):  # fmt: skip
        folded += n
    return folded


def _fold(changes):
    ours = [change for change in changes if change["job__task_id"]]
    if not ours:
        return
    deltas = defaultdict(Counter)
    for change in ours:
        delta = deltas[change["job__task_id"]]
        if change["old_status"]:
            delta["job:" + change["old_status"]] -= 1
        delta["job:" + change["new_status"]] += 1
        delta.update(_move_inputs(change))
    now = timezone.now()
    for task in Task.objects.select_for_update().filter(pk__in=list(deltas)):
        _apply(task, deltas[task.pk])
        task.modified_at = now
        task.save(update_fields=["jobs_by_state", "files_done", "files_failed", "events_done", "modified_at"])
        broken = status.broken_reason(task)
        if broken:
            actions.break_task(task, reason=broken, actor="task-rollup")
        elif (new := status.follows_from_counters(task)) is not None:
            status.change(task, new, actor="task-rollup", reason=_reason(task))


def _apply(task, delta):
    jobs = Counter(task.jobs_by_state)
    jobs.update({key[4:]: n for key, n in delta.items() if key.startswith("job:")})
    task.jobs_by_state = {state: n for state, n in sorted(jobs.items()) if n}
    task.files_done += delta["done"]
    task.files_failed += delta["failed"]
    task.events_done += delta["events"]


def _move_inputs(change):
    """Move the job's input pieces on; returns the change to the task's done/failed/events counters."""
    pandaid, new = change["job_id"], change["new_status"]
    moved = Counter()
    if not change["old_status"] and change["job__parent_id"]:
        # A new attempt takes over its parent's pieces, also ones given up before a person retried it.
        parents = TaskInput.objects.filter(job_id=change["job__parent_id"])
        moved["failed"] -= parents.filter(status=InputStatus.FAILED).update(
            job_id=pandaid, status=InputStatus.ASSIGNED, attempts=F("attempts") + 1
        )
        parents.filter(status=InputStatus.ASSIGNED).update(job_id=pandaid, attempts=F("attempts") + 1)
    elif new == JobStatus.FINISHED:
        pieces = TaskInput.objects.filter(job_id=pandaid, status=InputStatus.ASSIGNED)
        moved["events"] += pieces.aggregate(n=Sum("n_events"))["n"] or 0
        moved["done"] += pieces.update(status=InputStatus.DONE)
    elif new in ENDED_BADLY and not Job.objects.filter(parent_id=pandaid).exists():
        moved["failed"] += TaskInput.objects.filter(job_id=pandaid, status=InputStatus.ASSIGNED).update(
            status=InputStatus.FAILED
        )
    return moved


def _reason(task):
    return f"{task.files_done} of {task.files_total} input piece(s) done, {task.files_failed} failed"

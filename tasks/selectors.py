"""Reads for the task pages (tasks/pages.py): one task and what its page shows.

Every query is bounded and served by an index: the task's pieces by (task, lfn, first_event),
its jobs by Job.task_id, its status history and jobsets by their task foreign key, its output
container's members by the container. Aggregates (pieces by status, durations, failures) are
GROUP BYs over one task's rows; only the counts come back. The counters on Task itself
(files_done, jobs_by_state, ...) are the roll-up's and are read as they are, never recounted.
"""

from datetime import timedelta

from django.db.models import Count
from django.utils import timezone

from datasets.choices import Activity, DatasetKind
from datasets.models import Dataset, DatasetReplica, Subscription
from datasets.selectors import container_members
from jobs.choices import JobStatus
from jobs.error_selectors import error_counts, failure_selection, failures_by_code, timing_distributions
from jobs.models import Job
from pandamon.errors import NotFound
from pandamon.plots import TimeBins

from .choices import InputStatus
from .models import JobSet, Task, TaskInput, TaskStatusLog
from .services import actions

INPUTS_SHOWN = 50
JOBSETS_SHOWN = 100
HISTORY_SHOWN = 200
MEMBERS_SHOWN = 200
# The job states whose start -> end durations the page plots (a closed job never ran).
DURATION_STATES = (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELLED)
MIN_FAILURE_SPAN = timedelta(hours=1)


def get_task(task_id):
    task = Task.objects.filter(pk=task_id).first()
    if task is None:
        raise NotFound(f"no task {task_id}")
    return task


# ---------------------------------------------------------------- input pieces


def input_counts(task):
    """{status: n} of the task's input pieces, every status present (one GROUP BY over its pieces)."""
    rows = TaskInput.objects.filter(task=task).values_list("status").annotate(n=Count("pk")).order_by()
    return {**{status: 0 for status in InputStatus.values}, **dict(rows)}


def input_rows(task, *, status=None, limit=INPUTS_SHOWN):
    """The first `limit` pieces (in the order recorded: by file name and first event), with the state of
    the job holding each."""
    pieces = TaskInput.objects.filter(task=task)
    if status:
        pieces = pieces.filter(status=status)
    rows = list(
        pieces.order_by("lfn", "first_event").values(
            "lfn", "fsize", "first_event", "n_events", "status", "job_id", "attempts"
        )[:limit]
    )
    states = dict(Job.objects.filter(pandaid__in={row["job_id"] for row in rows if row["job_id"]})
                  .values_list("pandaid", "status"))  # fmt: skip
    for row in rows:
        row["job_status"] = states.get(row["job_id"])
    return rows


# ---------------------------------------------------------------- jobsets and status history


def jobsets(task, *, limit=JOBSETS_SHOWN):
    """(the newest `limit` submissions of jobs, how many there are)."""
    rows = list(
        JobSet.objects.filter(task=task).order_by("-jobset_id").values("jobset_id", "n_jobs", "created_at")[:limit]
    )
    total = len(rows) if len(rows) < limit else JobSet.objects.filter(task=task).count()
    return rows, total


def status_history(task, *, limit=HISTORY_SHOWN):
    """The task's state changes, oldest first (the last `limit`), each with how long the task stayed."""
    newest = TaskStatusLog.objects.filter(task=task).order_by("-changed_at", "-id")
    changes = list(newest.values("old_status", "new_status", "changed_at", "actor", "reason")[:limit])[::-1]
    for index, change in enumerate(changes):
        following = changes[index + 1]["changed_at"] if index + 1 < len(changes) else None
        change["stayed_s"] = round((following - change["changed_at"]).total_seconds()) if following else None
    return changes


def has_retryable_jobs(task):
    """Whether a retry would make a new attempt: a job of the task ended badly and has no next attempt yet."""
    retried = Job.objects.filter(task_id=task.task_id, parent_id__isnull=False).values("parent_id")
    ended_badly = (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.CLOSED)
    return Job.objects.filter(task_id=task.task_id, status__in=ended_badly).exclude(pandaid__in=retried).exists()


def has_reassignable_jobs(task):
    """Whether a reassignment would move any of its jobs: queued at a site, not yet taken by a pilot."""
    return Job.objects.filter(task_id=task.task_id, status__in=actions.REASSIGNABLE_STATES,
                              computing_site__isnull=False).exists()  # fmt: skip


# ---------------------------------------------------------------- output datasets


def output_datasets(task, *, limit=MEMBERS_SHOWN):
    """The output container (None before the first job was brokered) and its datasets: files, state and
    archival (the `archival` subscription's site and state, the files there, when it was archived)."""
    container = (
        Dataset.objects.filter(name=task.output_dataset, erased_at__isnull=True)
        .values("id", "name", "kind", "state", "n_files", "bytes", "archived_at")
        .first()
    )
    if container is None:
        return {"container": None, "members": [], "total": 0}
    if container["kind"] != DatasetKind.CONTAINER:  # the jobs write into a plain dataset directly
        members = [container]
        total = 1
    else:
        live = container_members(container=container["id"]).filter(erased_at__isnull=True)
        members = list(live.values("id", "name", "kind", "state", "n_files", "bytes", "archived_at")[:limit])
        total = len(members) if len(members) < limit else live.count()
    _add_archival(members)
    return {"container": {key: container[key] for key in ("name", "kind", "state")}, "members": members,
            "total": total}  # fmt: skip


def _add_archival(members):
    ids = [member["id"] for member in members]
    subscriptions = {}
    for row in (Subscription.objects.filter(dataset_id__in=ids, activity=Activity.ARCHIVAL)
                .values("dataset_id", "site_id", "site__name", "state").order_by("id")):  # fmt: skip
        subscriptions.setdefault(row["dataset_id"], row)
    present = {(row["dataset_id"], row["site_id"]): row["files_present"] for row in
               DatasetReplica.objects.filter(dataset_id__in=ids).values("dataset_id", "site_id", "files_present")}  # fmt: skip
    for member in members:
        dataset_id = member.pop("id")
        subscription = subscriptions.get(dataset_id)
        member["archival"] = None
        if subscription is not None:
            member["archival"] = {"site": subscription["site__name"], "subscription": subscription["state"],
                                  "files_there": present.get((dataset_id, subscription["site_id"]), 0)}  # fmt: skip


# ---------------------------------------------------------------- plots


def duration_distribution(task):
    """Jobs of the task by how long they ran (start -> end), one series per final state: the buckets
    of jobs.error_selectors.timing_distributions, one GROUP BY per state over the task's jobs."""
    buckets, edges, series = None, None, {}
    for state in DURATION_STATES:
        ended = Job.objects.filter(task_id=task.task_id, status=state, end_time__isnull=False)
        distribution = timing_distributions(ended)["duration"]
        buckets, edges = distribution["buckets"], distribution["edges_seconds"]
        counts = [sum(column) for column in zip(*distribution["by_type"].values(), strict=True)]
        if any(counts):
            series[state.value] = counts
    return {"from": "start_time", "to": "end_time", "buckets": buckets, "edges_seconds": edges, "series": series,
            "total": sum(sum(counts) for counts in series.values())}  # fmt: skip


def failures(task):
    """The task's failed jobs (and holding ones with an error) as the errors page counts them
    (jobs.error_selectors): by error code with the code's meaning, and over time by main error."""
    selection = failure_selection({"taskid": str(task.task_id)})
    # Over the task's life (its creation to its end, or now; at least the last hour of it), not just the span
    # of its failures (failure_selection's bins end just after the last failure, or now when there is none).
    end = max(task.ended_at or timezone.now(), selection.bins.end)
    start = min(task.created_at, end - MIN_FAILURE_SPAN)
    selection.bins = TimeBins.for_span(start, end)
    histogram, _ = error_counts(selection)
    return {"by_code": failures_by_code(selection.jobs), "over_time": histogram, "bin_label": selection.bins.label}

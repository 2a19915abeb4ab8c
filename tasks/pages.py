"""Portal pages of tasks: the task list and a task's page (each with its JSON twin), and the task actions.

The list takes the API's filters (tasks.filters.TaskFilterSet) through pandamon.listing; a task's
page reads through tasks/selectors.py; the kill / retry / reassign buttons call
tasks.services.actions, which checks who may (docs/tasks.md, "Who may do what").
"""

from datetime import timedelta
from functools import partial
from urllib.parse import urlencode

from django.contrib import messages
from django.http import JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from jobs.choices import JobStatus
from jobs.models import Job
from pandamon import plots
from pandamon.errors import InvalidInput, NotFound, PermissionDenied, ServiceError
from pandamon.pages import error_page, list_page, render_page, wants_json
from pandamon.site_pages import refuse_unknown

from . import selectors
from .choices import FINAL_TASK_STATES, InputStatus, TaskStatus, TaskType
from .filters import TaskFilterSet
from .models import Task
from .services import actions

LIST_COLUMNS = ("task_id", "name", "type", "owner_name", "status", "status_reason", "working_group", "project",
                "priority", "files_total", "files_done", "files_failed", "jobs_by_state", "created_at",
                "modified_at")  # fmt: skip
QUICK_LINKS = {
    "states": TaskStatus.values,
    "types": TaskType.values,
}
JOB_STATE_ORDER = {state: index for index, state in enumerate(JobStatus.values)}
TASK_HELP = {"states": TaskStatus, "types": TaskType, "inputs": InputStatus}
# The fields of a task the page lists under "Definition" (everything else has its own place).
DEFINITION_FIELDS = ("vo", "prod_source_label", "trf_version", "job_parameters", "output_formats", "events_per_file")


# ---------------------------------------------------------------- the task list


def task_list(request):
    return list_page(
        request,
        "tasks/task_list.html",
        # The FilterSet reads the request for mine=1 (the caller's own tasks).
        filterset_class=partial(TaskFilterSet, request=request),
        queryset=Task.objects.all(),
        columns=LIST_COLUMNS,
        decorate=_list_rows,
        context={"noun": "task", "quick": QUICK_LINKS, "help": TASK_HELP},
    )


def _list_rows(rows):
    return [_task_row(row) for row in rows]


def _task_row(row):
    """A task as the list (and its JSON twin) shows it: its fields, the meaning of its state, its progress,
    its jobs by state each with the link to them, and the links of its id and owner."""
    task_id = row["task_id"]
    return {
        **{name: row[name] for name in LIST_COLUMNS if name != "jobs_by_state"},
        "status_help": TaskStatus(row["status"]).label,
        "progress": progress(row["files_total"], row["files_done"], row["files_failed"]),
        "jobs_by_state": jobs_by_state(task_id, row["jobs_by_state"]),
        "url": reverse("task-page", args=[task_id]),
        "owner_url": reverse("user-page", args=[row["owner_name"]]) if row["owner_name"] else None,
    }


def progress(total, done, failed):
    """Files (input pieces) done and failed of the total, with their shares in %."""

    def share(part):
        return round(100 * part / total, 1) if total else 0.0

    return {"total": total, "done": done, "failed": failed, "remaining": max(0, total - done - failed),
            "done_pct": share(done), "failed_pct": share(failed)}  # fmt: skip


def jobs_by_state(task_id, counts):
    """[{state, count, url}] in the job lifecycle's order; each url opens those jobs in the job list."""
    states = sorted(
        (state for state, n in counts.items() if n), key=lambda s: JOB_STATE_ORDER.get(s, len(JOB_STATE_ORDER))
    )
    return [{"state": state, "count": counts[state],
             "url": reverse("jobs-page") + "?" + urlencode({"taskid": task_id, "jobstatus": state})}
            for state in states]  # fmt: skip


# ---------------------------------------------------------------- one task


def task_detail(request, task_id):
    try:
        refuse_unknown(request.GET, ("inputstatus",))
        input_status = _input_status(request.GET.get("inputstatus"))
        task = selectors.get_task(task_id)
    except NotFound as error:
        if not wants_json(request) and Job.objects.filter(task_id=task_id).exists():
            # Jobs that carry a task id the task table does not know (made outside a task): their list.
            return redirect(reverse("jobs-page") + "?" + urlencode({"taskid": task_id}))
        return error_page(request, error)
    except ServiceError as error:
        return error_page(request, error)
    context, data = _detail(request, task, input_status)
    return render_page(request, "tasks/task_detail.html", context, json_data=data)


def _input_status(raw):
    if raw in (None, ""):
        return None
    if raw not in InputStatus.values:
        raise InvalidInput(f"inputstatus: {raw[:40]!r} is not one of: {', '.join(InputStatus.values)}")
    return raw


def _detail(request, task, input_status, *, refusal=None):
    """(template context, JSON twin) of a task's page."""
    by_state = jobs_by_state(task.task_id, task.jobs_by_state)
    counts = selectors.input_counts(task)
    inputs = selectors.input_rows(task, status=input_status)
    jobsets, n_jobsets = selectors.jobsets(task)
    history = selectors.status_history(task)
    outputs = selectors.output_datasets(task)
    durations = selectors.duration_distribution(task)
    failures = selectors.failures(task)
    allowed = available_actions(request.user, task)
    data = {
        "task": _task_fields(task),
        "progress": progress(task.files_total, task.files_done, task.files_failed),
        "events": {"total": task.events_total, "done": task.events_done},
        "jobs_by_state": by_state,
        "jobs_url": reverse("jobs-page") + "?" + urlencode({"taskid": task.task_id}),
        "inputs": {
            "counts": counts, "status": input_status, "shown": len(inputs), "limit": selectors.INPUTS_SHOWN,
            "rows": inputs, "api": reverse("task-inputs", kwargs={"task_id": task.task_id}),
        },
        "jobsets": {"total": n_jobsets, "rows": jobsets},
        "history": history,
        "outputs": outputs,
        "plots": {"durations": durations, "failures": failures},
        "actions": allowed,
    }  # fmt: skip
    context = {
        "task": task, "data": data, "help": TASK_HELP, "refusal": refusal, "actions": allowed,
        "status_help": TaskStatus(task.status).label, "input_help": dict(InputStatus.choices),
        "definition": [(Task._meta.get_field(name).verbose_name, getattr(task, name)) for name in DEFINITION_FIELDS],
        "figures": _figures(durations, failures),
        "errors_url": reverse("errors-page") + "?" + urlencode({"taskid": task.task_id}),
        "inputs_shown_all": len(inputs) >= (counts[input_status] if input_status else sum(counts.values())),
    }  # fmt: skip
    return context, data


def _task_fields(task):
    fields = {field.name: getattr(task, field.attname) for field in task._meta.fields if field.name != "owner"}
    transformation = task.transformation
    is_url = transformation.startswith(("http://", "https://", "/cache/"))
    fields.update({
        "status_help": TaskStatus(task.status).label,
        "url": reverse("task-page", args=[task.task_id]),
        "owner_url": reverse("user-page", args=[task.owner_name]) if task.owner_name else None,
        "input_dataset_url": reverse("dataset-page", args=[task.input_dataset]),
        "output_dataset_url": reverse("dataset-page", args=[task.output_dataset]),
        "transformation_url": transformation if is_url else None,
        "transformation_kind": "url" if is_url else "script" if transformation.startswith("#!") else "command",
        "splitting": splitting_rule(task),
    })  # fmt: skip
    return fields


def splitting_rule(task):
    if task.n_events_per_job:
        return f"{task.n_events_per_job} events per job"
    if task.max_size_per_job_mb:
        return f"up to {task.max_size_per_job_mb} MB of input per job"
    return f"{task.n_files_per_job or 1} file(s) per job"


# The duration plot's series take the colours of the job states elsewhere on the page.
STATE_COLOURS = {JobStatus.FINISHED: "#2e8b57", JobStatus.FAILED: "#c62828", JobStatus.CANCELLED: "#9e9e9e"}


def _figures(durations, failures):
    over_time = failures["over_time"]
    width = over_time["bin"]["width_seconds"]
    figures = {
        "durations": plots.stacked_category_histogram(
            durations["buckets"], durations["series"], title="Job durations (start → end), by final state",
            x_title="duration", y_title="jobs",
        ),
        "failures": plots.stacked_time_histogram(
            over_time["bins"], over_time["series"], width=timedelta(seconds=width),
            title=f"Failures per {failures['bin_label']}, by error code",
        ),
    }  # fmt: skip
    for trace in figures["durations"]["data"]:
        trace["marker"] = {"color": STATE_COLOURS.get(trace["name"], plots.OTHER_COLOR)}
    return figures


# ---------------------------------------------------------------- actions


def available_actions(user, task):
    """The buttons this user gets: kill while the task runs, retry while some of its jobs ended badly without a
    new attempt (a broken task cannot run), reassign while some of its jobs wait at a site. Nothing for who may
    not manage it."""
    if not user.is_authenticated or not actions.may_manage(user, task):
        return []
    allowed = []
    if task.status not in FINAL_TASK_STATES:
        allowed.append("kill")
    if task.status != TaskStatus.BROKEN and selectors.has_retryable_jobs(task):
        allowed.append("retry")
    if task.status not in FINAL_TASK_STATES and selectors.has_reassignable_jobs(task):
        allowed.append("reassign")
    if task.status == TaskStatus.PAUSED:
        allowed.append("resume")
    elif task.status not in FINAL_TASK_STATES:
        allowed.append("pause")
    return allowed


@require_POST
def task_kill(request, task_id):
    """Abort the task: its queued jobs are cancelled, its running ones told to stop."""
    reason = request.POST.get("reason", "").strip()[:200]
    return _act(request, task_id, lambda user: actions.kill_task(user=user, task_id=task_id, reason=reason))


@require_POST
def task_retry(request, task_id):
    """New attempts for the task's failed jobs (with also=ended: its cancelled and closed ones too)."""
    also = request.POST.get("also", "")
    if also not in ("", "ended"):
        return _refused(request, task_id, InvalidInput(f"also must be 'ended' or empty, got {also[:20]!r}"))
    return _act(request, task_id, lambda user: actions.retry_task(user=user, task_id=task_id, failed_only=not also))


@require_POST
def task_pause(request, task_id):
    """Hold the task's jobs not yet brokered."""
    return _act(request, task_id, lambda user: actions.pause_task(user=user, task_id=task_id))


@require_POST
def task_resume(request, task_id):
    """Let a paused task's jobs be brokered again."""
    return _act(request, task_id, lambda user: actions.resume_task(user=user, task_id=task_id))


@require_POST
def task_reassign(request, task_id):
    """Its queued jobs brokered again (with exclude_site: only those at that site, which the task then avoids)."""
    site = request.POST.get("exclude_site", "").strip() or None
    return _act(request, task_id, lambda user: actions.reassign_task(user=user, task_id=task_id, exclude_site=site))


def _act(request, task_id, action):
    if not request.user.is_authenticated:
        return _refused(request, task_id, PermissionDenied("log in to act on tasks"))
    try:
        outcome = action(request.user)
    except ServiceError as error:
        return _refused(request, task_id, error)
    if wants_json(request):
        return JsonResponse(outcome)
    messages.success(request, f"{outcome['message']} (the counters below follow within a minute)")
    return redirect("task-page", task_id)


def _refused(request, task_id, error):
    """A refusal: the task's page with the reason on top, answered with the refusal's 4xx status."""
    task = Task.objects.filter(pk=task_id).first()
    if task is None or wants_json(request):
        return error_page(request, error)
    context, data = _detail(request, task, None, refusal=error.message)
    return render_page(request, "tasks/task_detail.html", context, json_data=data, status=error.status_code)

"""Portal pages for jobs (each with its JSON twin)."""

from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_POST

from datasets.flow_selectors import job_data_flow
from pandamon.errors import InvalidInput, PermissionDenied, ServiceError
from pandamon.pages import error_page, list_page, render_page

from . import analysis, control_selectors, errorcodes, selectors
from .brokerage_selectors import brokerage_decision
from .choices import FINAL_STATES, JobStatus
from .filters import JobFilterSet
from .models import Job, PeekRequest
from .services import kill, peek, retry

LIST_COLUMNS = ("pandaid", "job_name", "status", "computing_site__name", "cloud", "prod_source_label",
                "prod_user_name", "task_id", "current_priority", "attempt_nr", "core_count", "creation_time",
                "start_time", "end_time", "state_change_time", "modification_time", *errorcodes.ROW_COLUMNS)  # fmt: skip
QUICK_LINKS = {
    "types": ("analysis", "production", "test"),
    "states": (JobStatus.DEFINED, JobStatus.ASSIGNED, JobStatus.WAITING, JobStatus.ACTIVATED, JobStatus.SENT,
               JobStatus.RUNNING, JobStatus.HOLDING, JobStatus.TRANSFERRING, JobStatus.FINISHED, JobStatus.FAILED,
               JobStatus.CANCELLED),
}  # fmt: skip


def job_list(request):
    return list_page(
        request,
        "jobs/job_list.html",
        filterset_class=JobFilterSet,
        queryset=Job.objects.all(),
        columns=LIST_COLUMNS,
        decorate=_with_timings_and_error,
        context={"noun": "job", "quick": QUICK_LINKS, "states": JobStatus},
    )


def _with_timings_and_error(rows):
    """Each row gains wait (creation -> start), duration (start -> end, or so far) and its first error."""
    now = timezone.now()
    for row in rows:
        start, end = row["start_time"], row["end_time"]
        row["wait_s"] = _seconds(start - row["creation_time"]) if start else None
        row["duration_s"] = _seconds((end or now) - start) if start else None
        row["error"] = errorcodes.first_error(row)
    return rows


def _seconds(delta):
    return round(delta.total_seconds())


def job_detail(request, pandaid):
    try:
        job = selectors.job_detail(pandaid=pandaid)
    except ServiceError as error:
        return error_page(request, error)
    files = list(selectors.job_files(job=job))
    replicas = selectors.file_replica_sites(lfns={item.lfn for item in files})
    history = list(selectors.job_history(job=job))
    previous, following = selectors.job_attempts(job=job)
    errors = _error_lines(job)
    control = control_selectors.job_control(job=job)
    data = {
        "job": {field.name: getattr(job, field.attname) for field in job._meta.fields},
        "files": [_file_data(item, replicas) for item in files],
        "history": [
            {"from": h.old_status, "to": h.new_status, "at": h.changed_at, "actor": h.actor, "reason": h.reason}
            for h in history
        ],
        "brokerage": _brokerage_log(job, history),
        "brokerage_decision": brokerage_decision(pandaid=job.pandaid),
        "errors": errors,
        "why_waiting": analysis.explain(job),
        "previous_attempt": previous.pandaid if previous else None,
        "next_attempts": [j.pandaid for j in following],
        "pilot_log": selectors.pilot_log(job=job),
        "data_flow": job_data_flow(job=job, files=files),
        "control": control,
    }
    context = {"job": job, "data": data, "files": data["files"], "history": _with_durations(history),
               "errors": errors, "previous": previous, "following": following,
               "state_help": JobStatus(job.status).label, "actions": _actions(request.user, job, retried=bool(following)),
               "control": control, "control_actions": control_selectors.control_actions(request.user, job),
               "peek_kinds": PeekRequest.Kind.choices}  # fmt: skip
    return render_page(request, "jobs/job_detail.html", context, json_data=data)


def _file_data(item, replicas):
    row = {field.name: getattr(item, field.attname) for field in item._meta.fields}
    row["replicas"] = [{"site": site, "state": state} for site, state in replicas.get(item.lfn, [])]
    return row


def _brokerage_log(job, history):
    """What brokerage decided: its state changes, and why no site fitted when none did."""
    lines = [{"at": h.changed_at, "to": h.new_status, "reason": h.reason} for h in history if h.actor == "brokerage"]
    if job.brokerage_error_diag:
        lines.append({"at": job.brokered_at, "to": None, "reason": job.brokerage_error_diag})
    return lines


def _actions(user, job, *, retried):
    """The buttons this user gets: kill while the job can still end, retry once it has ended badly
    (and has no next attempt yet)."""
    if not user.is_authenticated or not kill.may_kill(user, job):
        return []
    if job.status not in FINAL_STATES:
        return ["kill"]
    retryable = job.status in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.CLOSED)
    return ["retry"] if retryable and not retried else []


@require_POST
def job_kill(request, pandaid):
    """The kill button: the same service and permission rule as POST /api/v1/jobs/kill/."""
    return _act(request, pandaid, lambda: kill.kill_jobs(user=request.user, pandaids=[pandaid],
                                                         reason=request.POST.get("reason", "")[:200]))  # fmt: skip


@require_POST
def job_retry(request, pandaid):
    """The retry button: the same service and permission rule as POST /api/v1/jobs/<id>/retry/."""
    return _act(request, pandaid, lambda: retry.retry_for_user(user=request.user, pandaid=pandaid))


@require_POST
def job_peek(request, pandaid):
    """A peek button: the same service and permission rule as POST /api/v1/jobs/<id>/peek/."""
    kind = request.POST.get("kind", "")
    return _act(request, pandaid, lambda: peek.request_peek(user=request.user, pandaid=pandaid, kind=kind))


@require_POST
def job_debug(request, pandaid):
    """The debug mode button (on=1 / on=0): the same rule as POST /api/v1/jobs/<id>/debug/."""
    return _act(request, pandaid, lambda: peek.set_debug_mode(user=request.user, pandaid=pandaid,
                                                              on=_on_off(request.POST.get("on", ""))))  # fmt: skip


def _on_off(value):
    if value not in ("0", "1"):
        raise InvalidInput("on must be 1 (debug mode on) or 0 (off)")
    return value == "1"


def _act(request, pandaid, action):
    if not request.user.is_authenticated:
        return error_page(request, PermissionDenied("log in to act on jobs"))
    try:
        outcome = action()
    except ServiceError as error:
        return error_page(request, error)
    if isinstance(outcome, Job):
        return redirect("job-page", outcome.pandaid)
    return redirect("job-page", pandaid)


def _error_lines(job):
    lines = []
    for source in errorcodes.ERROR_SOURCES:
        code, diag = getattr(job, source.code), getattr(job, source.diag)
        if code or diag:
            lines.append({"component": source.component, "code": code, "diag": diag,
                          "meaning": errorcodes.describe(source.component, code)})  # fmt: skip
    return lines


def _with_durations(history):
    """Pair each state change with how long the job stayed in the state it entered."""
    rows = []
    for index, change in enumerate(history):
        until = history[index + 1].changed_at if index + 1 < len(history) else None
        rows.append({"change": change, "duration": (until - change.changed_at) if until else None})
    return rows

"""Portal pages for jobs (each with its JSON twin)."""

from django.utils import timezone

from pandamon.errors import ServiceError
from pandamon.pages import error_page, list_page, render_page

from . import errorcodes, selectors
from .choices import JobStatus
from .filters import JobFilterSet
from .models import Job

ERROR_COLUMNS = (
    ("pilot", "pilot_error_code", "pilot_error_diag"),
    ("exe", "exe_error_code", "exe_error_diag"),
    ("job_dispatcher", "job_dispatcher_error_code", "job_dispatcher_error_diag"),
    ("ddm", "ddm_error_code", "ddm_error_diag"),
    ("brokerage", "brokerage_error_code", "brokerage_error_diag"),
    ("task_buffer", "task_buffer_error_code", "task_buffer_error_diag"),
)
LIST_COLUMNS = ("pandaid", "job_name", "status", "computing_site__name", "cloud", "prod_source_label",
                "prod_user_name", "task_id", "current_priority", "attempt_nr", "core_count", "creation_time",
                "start_time", "end_time", "state_change_time", "modification_time",
                *(column for _, code, diag in ERROR_COLUMNS for column in (code, diag)))  # fmt: skip
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
        row["error"] = _first_error(row)
    return rows


def _seconds(delta):
    return round(delta.total_seconds())


def _first_error(row):
    for component, code, diag in ERROR_COLUMNS:
        if row[code] or row[diag]:
            return {"component": component, "code": row[code], "diag": row[diag],
                    "meaning": errorcodes.describe(component, row[code])}  # fmt: skip
    return None


def job_detail(request, pandaid):
    try:
        job = selectors.job_detail(pandaid=pandaid)
    except ServiceError as error:
        return error_page(request, error)
    files = list(selectors.job_files(job=job))
    history = list(selectors.job_history(job=job))
    previous, following = selectors.job_attempts(job=job)
    errors = _error_lines(job)
    data = {
        "job": {field.name: getattr(job, field.attname) for field in job._meta.fields},
        "files": [{f.name: getattr(item, f.attname) for f in item._meta.fields} for item in files],
        "history": [
            {"from": h.old_status, "to": h.new_status, "at": h.changed_at, "actor": h.actor, "reason": h.reason}
            for h in history
        ],
        "errors": errors,
        "previous_attempt": previous.pandaid if previous else None,
        "next_attempts": [j.pandaid for j in following],
    }
    context = {"job": job, "files": files, "history": _with_durations(history), "errors": errors,
               "previous": previous, "following": following, "state_help": JobStatus(job.status).label}  # fmt: skip
    return render_page(request, "jobs/job_detail.html", context, json_data=data)


def _error_lines(job):
    sources = (
        ("pilot", job.pilot_error_code, job.pilot_error_diag),
        ("exe", job.exe_error_code, job.exe_error_diag),
        ("job_dispatcher", job.job_dispatcher_error_code, job.job_dispatcher_error_diag),
        ("ddm", job.ddm_error_code, job.ddm_error_diag),
        ("brokerage", job.brokerage_error_code, job.brokerage_error_diag),
        ("task_buffer", job.task_buffer_error_code, job.task_buffer_error_diag),
        ("sup", job.sup_error_code, job.sup_error_diag),
        ("server", job.server_error_code, job.server_error_diag),
    )
    return [
        {"component": name, "code": code, "diag": diag, "meaning": errorcodes.describe(name, code)}
        for name, code, diag in sources
        if code or diag
    ]


def _with_durations(history):
    """Pair each state change with how long the job stayed in the state it entered."""
    rows = []
    for index, change in enumerate(history):
        until = history[index + 1].changed_at if index + 1 < len(history) else None
        rows.append({"change": change, "duration": (until - change.changed_at) if until else None})
    return rows

"""Portal pages for jobs (each with its JSON twin)."""

from datetime import timedelta

from django.db.models import Count
from django.utils import timezone

from pandamon.errors import InvalidInput, ServiceError
from pandamon.pages import error_page, render_page

from . import errorcodes, selectors
from .choices import JobStatus

PAGE_SIZE = 100
DEFAULT_HOURS = 12
LIST_COLUMNS = ("pandaid", "job_name", "status", "computing_site__name", "prod_source_label", "prod_user_name",
                "current_priority", "attempt_nr", "creation_time", "modification_time")  # fmt: skip


def job_list(request):
    try:
        jobs, window = _windowed(request)
        before = _int_param(request, "before")
    except ServiceError as error:
        return error_page(request, error)
    status_counts = dict(jobs.order_by().values_list("status").annotate(n=Count("pandaid")))
    page = jobs.filter(pandaid__lt=before) if before else jobs
    rows = list(page.values(*LIST_COLUMNS)[: PAGE_SIZE + 1])
    next_before = rows[PAGE_SIZE - 1]["pandaid"] if len(rows) > PAGE_SIZE else None
    rows = rows[:PAGE_SIZE]
    filters = {key: value for key, value in request.GET.items() if key not in ("json", "before")}
    data = {
        "meta": {"filters": filters, "window_hours": window, "total": sum(status_counts.values()), "next": next_before},
        "facets": {"status": status_counts},
        "rows": rows,
    }
    context = {"data": data, "rows": rows, "status_counts": _ordered_counts(status_counts), "states": JobStatus}
    return render_page(request, "jobs/job_list.html", context, json_data=data)


def _windowed(request):
    hours = _int_param(request, "hours") or DEFAULT_HOURS
    if not 1 <= hours <= 24 * 365:
        raise InvalidInput("hours must be between 1 and 8760")
    jobs = selectors.job_list(params=request.GET)
    return jobs.filter(modification_time__gte=timezone.now() - timedelta(hours=hours)), hours


def _int_param(request, name):
    raw = request.GET.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer, got {raw[:40]!r}") from None


def _ordered_counts(counts):
    return [(status, label, counts[status]) for status, label in JobStatus.choices if status in counts]


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

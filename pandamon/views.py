"""Cross-app pages: the home dashboard, the site list (sites with their jobs) and worker runs.

They live here, at the top of the dependency order, because they combine apps."""

from datetime import timedelta

from django.db.models import Count
from django.utils import timezone

from jobs.choices import JobStatus
from jobs.models import Job
from jobs.selectors import job_counts_by_site_and_status
from sites.selectors import site_list as select_sites

from .models import WorkerRun
from .pages import render_page

RECENT_HOURS = 12


def home(request):
    since = timezone.now() - timedelta(hours=RECENT_HOURS)
    by_cloud = (
        Job.objects.filter(modification_time__gte=since)
        .values_list("cloud", "status")
        .annotate(n=Count("pandaid"))
        .order_by()
    )
    table = {}
    for cloud, status, n in by_cloud:
        table.setdefault(cloud or "(unassigned)", {})[status] = n
    failures = list(
        Job.objects.filter(status=JobStatus.FAILED, modification_time__gte=since)
        .order_by("-modification_time")
        .values("pandaid", "job_name", "computing_site__name", "pilot_error_diag", "exe_error_diag",
                "job_dispatcher_error_diag", "ddm_error_diag", "modification_time")[:15]
    )  # fmt: skip
    data = {"meta": {"window_hours": RECENT_HOURS}, "jobs_by_cloud_and_state": table, "recent_failures": failures}
    context = {"table": sorted(table.items()), "states": list(JobStatus), "failures": failures, "hours": RECENT_HOURS}
    return render_page(request, "home.html", context, json_data=data)


def worker_runs(request):
    runs = list(WorkerRun.objects.values("name", "status", "started_at", "finished_at", "counts", "error")[:200])
    return render_page(request, "worker_runs.html", {"runs": runs}, json_data={"rows": runs})


SITE_SHOWN_STATES = (JobStatus.DEFINED, JobStatus.ACTIVATED, JobStatus.SENT, JobStatus.STARTING, JobStatus.RUNNING,
                JobStatus.HOLDING, JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELLED)  # fmt: skip


def site_list(request):
    counts = job_counts_by_site_and_status(statuses=SITE_SHOWN_STATES)
    sites = list(select_sites())
    rows = []
    for site in sites:
        activity = getattr(site, "pilot_activity", None)
        site_counts = counts.get(site.pk, {})
        rows.append(
            {
                "name": site.name, "cloud": site.cloud.name, "tier": site.tier, "status": site.status,
                "max_memory_mb": site.max_memory_mb, "cores": site.cores, "max_running_jobs": site.max_running_jobs,
                "last_pilot_contact": activity.last_contact_at if activity else None,
                "jobs": {state: site_counts.get(state, 0) for state in SITE_SHOWN_STATES},
            }
        )  # fmt: skip
    data = {"meta": {"total": len(rows)}, "rows": rows}
    return render_page(request, "sites/site_list.html", {"rows": rows, "states": SITE_SHOWN_STATES}, json_data=data)

"""Cross-app pages: the home dashboard and worker runs.

They live here, at the top of the dependency order, because they combine apps."""

from dataclasses import asdict
from datetime import timedelta

from django.db.models import Count
from django.shortcuts import redirect
from django.utils import timezone

from jobs.choices import JobStatus
from jobs.models import Job

from .models import WorkerRun
from .pages import render_page, wants_json
from .search import resolve, tried

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


def search(request):
    """Redirect to the page the query names; otherwise a 404 page saying what was tried."""
    query = request.GET.get("q", "").strip()
    if not query:
        return render_page(request, "search.html", {"query": ""}, json_data={"query": "", "hit": None}, status=400)
    hit = resolve(query)
    if hit and hit.url:
        if wants_json(request):
            return render_page(request, "", {}, json_data={"query": query, "hit": asdict(hit)})
        return redirect(hit.url)
    data = {"query": query, "hit": None, "tried": tried(query)}
    return render_page(request, "search.html", {**data}, json_data=data, status=404)

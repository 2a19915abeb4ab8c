"""Cross-app pages: the home dashboard and worker runs.

They live here, at the top of the dependency order, because they combine apps."""

from collections import Counter, defaultdict
from dataclasses import asdict
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q
from django.shortcuts import redirect
from django.utils import timezone

from alarms.selectors import job_history, live_alarms, storage_history, transfer_history
from datasets.flow_selectors import transfer_activity
from jobs.choices import FINAL_STATES, JobStatus
from jobs.errorcodes import first_error
from jobs.selectors import live_and_recent_counts, recent_failures
from sites.selectors import pilots_silent
from sites.selectors import site_list as select_sites

from . import plots
from .models import WorkerRun
from .pages import render_page, wants_json
from .search import resolve, tried
from .workers import allowed_silence, latest_runs, periodic_workers

RECENT_HOURS = 12
HISTORY_HOURS = 48
HOME_ALARMS = 10
DASHBOARD_STATES = (JobStatus.DEFINED, JobStatus.ASSIGNED, JobStatus.WAITING, JobStatus.ACTIVATED, JobStatus.SENT,
                    JobStatus.STARTING, JobStatus.RUNNING, JobStatus.HOLDING, JobStatus.TRANSFERRING,
                    JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.CLOSED)  # fmt: skip
# A site is flagged when more than this share of its ended jobs failed in the window, or when it has
# activated jobs and its pilots are silent (sites.selectors.pilots_silent).
FAILURE_ALARM_SHARE = 0.2


def home(request):
    now = timezone.now()
    since = now - timedelta(hours=RECENT_HOURS)
    counts = live_and_recent_counts(final_window=Q(modification_time__gte=since))
    clouds = _clouds_with_sites(counts, now)
    failures = [{**row, "error": first_error(row)} for row in recent_failures(since=since, limit=15)]
    data = {
        # The window applies to the final states only (see the page's help).
        "meta": {"window": {"field": "modification_time", "from": since, "to": None, "hours": RECENT_HOURS}},
        "clouds": clouds,
        "totals": _sum_counts(cloud["counts"] for cloud in clouds),
        "recent_failures": failures,
        "alarms": list(live_alarms(limit=HOME_ALARMS)),
        "transfers": transfer_activity(now=now),
    }
    figure = history_figure(site=None, title=f"All sites, last {HISTORY_HOURS} h")
    transfers_figure = transfer_history_figure(site=None, title=f"Transfers, all channels, last {HISTORY_HOURS} h")
    transfers = data["transfers"]
    context = {"data": data, "clouds": clouds, "states": DASHBOARD_STATES, "failures": failures,
               "hours": RECENT_HOURS, "final_states": FINAL_STATES, "history_figure": figure, "transfer_history_figure": transfers_figure,
               "transfer_periods": [("last hour", 1, transfers["last_hour"]), ("last 24 h", 24, transfers["last_day"])]}  # fmt: skip
    return render_page(request, "home.html", context, json_data=data)


def transfer_history_figure(*, site, title):
    """Transfers per snapshot interval (files done, failed) and the queue, into `site` (or everywhere);
    None before the first snapshot."""
    edges, series = transfer_history(since=timezone.now() - timedelta(hours=HISTORY_HOURS), destination=site)
    if not edges:
        return None
    width = timedelta(seconds=settings.PANDA["HISTORY_INTERVAL_SECONDS"])
    shown = {name: series[name] for name in ("files_done", "files_failed", "queued", "submitted") if name in series}
    return plots.time_lines(edges, shown, width=width, title=title, y_title="files")


def storage_history_figure(*, site, title):
    """A site's storage over time: used and free space from its reports, and the catalog's bytes there."""
    edges, series = storage_history(since=timezone.now() - timedelta(hours=HISTORY_HOURS), site=site)
    if not edges or not any(value for values in series.values() for value in values if value):
        return None
    width = timedelta(seconds=settings.PANDA["HISTORY_INTERVAL_SECONDS"])
    gigabytes = {name: [None if v is None else round(v / 1e9, 3) for v in series[name]]
                 for name in ("used_bytes", "free_bytes", "catalog_bytes")}  # fmt: skip
    return plots.time_lines(edges, gigabytes, width=width, title=title, y_title="GB")


def history_figure(*, site, title):
    """The operations history of a site (or of all sites) as a plotly figure, None before the first snapshot.
    Final states count jobs ended per interval; they start hidden (a click on the legend shows them)."""
    edges, series = job_history(site=site, since=timezone.now() - timedelta(hours=HISTORY_HOURS))
    if not edges:
        return None
    width = timedelta(seconds=settings.PANDA["HISTORY_INTERVAL_SECONDS"])
    ordered = {status: series[status] for status in DASHBOARD_STATES if status in series}
    return plots.time_lines(edges, ordered, width=width, title=title,
                            hidden=[status for status in ordered if status in FINAL_STATES])  # fmt: skip


def _clouds_with_sites(counts, now):
    """Clouds (with their sites' rows) that have jobs to show, each site flagged when it looks wrong."""
    per_site, unassigned = defaultdict(Counter), defaultdict(Counter)
    for (site_id, cloud), cell in counts.items():
        (per_site[site_id] if site_id else unassigned[cloud or "(none)"]).update(cell)
    clouds = {}
    for site in select_sites().filter(pk__in=per_site):
        activity = getattr(site, "pilot_activity", None)
        row = _site_row(site, dict(per_site[site.pk]), activity.last_contact_at if activity else None, now)
        clouds.setdefault(site.cloud.name, []).append(row)
    result = [{"name": name, "sites": rows, "counts": _sum_counts(r["counts"] for r in rows)}
              for name, rows in sorted(clouds.items())]  # fmt: skip
    for cloud, cell in sorted(unassigned.items()):
        result.append({"name": f"not brokered ({cloud})", "sites": [], "counts": dict(cell)})
    return result


def _site_row(site, cell, last_contact, now):
    finished, failed = cell.get(JobStatus.FINISHED, 0), cell.get(JobStatus.FAILED, 0)
    alarms = []
    if failed and failed > FAILURE_ALARM_SHARE * (finished + failed):
        alarms.append(f"{100 * failed // (finished + failed)}% failed")
    if cell.get(JobStatus.ACTIVATED) and pilots_silent(last_contact, now):
        alarms.append("no pilots")
    return {"name": site.name, "status": site.status, "tier": site.tier, "counts": cell,
            "last_pilot_contact": last_contact, "alarms": alarms}  # fmt: skip


def _sum_counts(cells):
    total = Counter()
    for cell in cells:
        total.update(cell)
    return dict(total)


def worker_runs(request):
    """Every periodic worker: its period, its last run (status, duration, counts, error), its runs and
    failures of the last 24 h, and whether it is late; then the latest runs (of one worker with ?name=)."""
    now = timezone.now()
    latest = latest_runs()
    day = WorkerRun.objects.filter(started_at__gte=now - timedelta(days=1)).values_list("name", "status")
    per_day = {}
    for name, status, n in day.annotate(n=Count("*")).order_by():
        per_day.setdefault(name, {})[status] = n
    workers = [_worker_row(name, period, latest.get(name), per_day.get(name, {}), now)
               for name, period in periodic_workers()]  # fmt: skip
    runs = WorkerRun.objects.order_by("-started_at")
    if request.GET.get("name"):
        runs = runs.filter(name=request.GET["name"])
    rows = list(runs.values("name", "status", "started_at", "finished_at", "counts", "error")[:200])
    data = {"workers": workers, "rows": rows}
    return render_page(request, "worker_runs.html", {"workers": workers, "runs": rows}, json_data=data)


def _worker_row(name, period, last, day_counts, now):
    finished = last.finished_at if last else None
    return {
        "name": name, "period_s": period.total_seconds(),
        "last_started": last.started_at if last else None, "last_status": last.status if last else None,
        "last_duration_s": (finished - last.started_at).total_seconds() if finished else None,
        "last_counts": last.counts if last else {}, "last_error": last.error if last else "",
        "runs_24h": sum(day_counts.values()), "failed_24h": day_counts.get(WorkerRun.Status.FAILED, 0),
        "late": last is None or now - last.started_at > allowed_silence(period),
    }  # fmt: skip


def search(request):
    """Redirect to the page the query names; otherwise a 404 page saying what was tried."""
    query = request.GET.get("q", "").strip()
    if not query:
        return render_page(request, "search.html", {"query": ""}, json_data={"query": "", "hit": None}, status=400)
    hit = resolve(query)
    if hit:
        if wants_json(request):
            return render_page(request, "", {}, json_data={"query": query, "hit": asdict(hit)})
        return redirect(hit.url)
    data = {"query": query, "hit": None, "tried": tried(query)}
    return render_page(request, "search.html", data, json_data=data, status=404)

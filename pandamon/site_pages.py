"""Site pages: the site list, a site's page and its worker nodes (each with its JSON twin).

They live in pandamon/ because they combine sites with jobs and data (pandamon/site_selectors.py).
The window helpers here are shared with the user and usage pages (pandamon/user_pages.py).
"""

from urllib.parse import urlencode

from django.urls import reverse
from django.utils import timezone

from datasets.choices import SubscriptionState, TransferState
from datasets.flow_selectors import site_subscription_counts, site_transfers
from jobs.analysis import site_waiting_summary
from jobs.choices import JobStatus
from jobs.error_selectors import failures_by_code
from pandamon import site_selectors as selectors
from pandamon.errors import InvalidInput, NotFound, ServiceError
from pandamon.grammar import WINDOW_PARAMS, window_of
from pandamon.listing import run_listing
from sites.choices import SiteStatus
from sites.filters import SiteFilterSet
from sites.models import Site
from sites.selectors import pilots_silent
from sites.selectors import site_list as select_sites

from .pages import error_page, render_page
from .views import history_figure, storage_history_figure, transfer_history_figure

SITE_COLUMNS = ("id", "name", "cloud__name", "tier", "status", "grid_flavour", "max_memory_mb", "max_disk_mb",
                "max_walltime_s", "cores", "max_running_jobs", "comment", "pilot_activity__last_contact_at")  # fmt: skip
SITE_WINDOW_HOURS = 12
MAX_WINDOW_HOURS = 30 * 24
# The jobs list's widest window: queued and active jobs are counted whatever their age.
ALL_TIME = {"days": "3650"}
ALWAYS_SHOWN = {JobStatus.ACTIVATED, JobStatus.RUNNING, *selectors.FINAL_STATE_ORDER[:3]}
TOP_NODES = 10
WINDOW_CHOICES = (1, 3, 6, 12, 24, 48, 72, 168, 336, 720)
NODE_HEADERS = (("node", "Node"), ("jobs", "Jobs"), ("active", "Active"), ("finished", "Finished"), ("failed", "Failed"),
                ("cancelled", "Cancelled"), ("closed", "Closed"), ("failure_pct", "Fail %"), ("last_seen", "Last seen"))  # fmt: skip
NODE_SORT_KEYS = tuple(key for key, _ in NODE_HEADERS)


# ---------------------------------------------------------------- helpers shared by the summary pages


def job_window(params, *, default_hours, max_hours=MAX_WINDOW_HOURS):
    """The jobs window of a summary page (hours= / days= / date_from= / date_to=); InvalidInput when bad.

    Always bounded: these pages aggregate jobs, and an unbounded window would read the whole history."""
    window = window_of(params, field="modification_time", default_hours=default_hours)
    if window.start is None:
        raise InvalidInput("give hours=, days= or date_from= with date_to=: this page needs a bounded window")
    span_hours = window.hours or ((window.end or timezone.now()) - window.start).total_seconds() / 3600
    if span_hours > max_hours:
        raise InvalidInput(f"the window may span at most {max_hours // 24} days on this page")
    return window


def window_params(params, window):
    """The window parameters to carry into jobs list links: the ones given, else the default hours."""
    given = {name: params[name] for name in WINDOW_PARAMS if params.get(name)}
    return given or {"hours": f"{window.hours:g}"}


def refuse_unknown(params, allowed):
    """A typo must not silently change what a page shows: unknown parameters are a 400."""
    unknown = sorted(set(params) - set(allowed) - {"json"})
    if unknown:
        raise InvalidInput(f"unknown parameter {', '.join(unknown)}; this page takes {', '.join(sorted(allowed))}")


def kept_params(params):
    """The page's parameters other than the window, for the window selector's hidden fields."""
    return {name: value for name, value in params.items() if name not in WINDOW_PARAMS and name != "json"}


def sort_headers(headers, sortby):
    """Column headers that sort: a click sorts by the column, descending first, a second click ascending."""
    return [
        {"key": key, "label": label, "sorted": sortby.removeprefix("-") == key,
         "next": key if sortby == f"-{key}" else f"-{key}"}
        for key, label in headers
    ]  # fmt: skip


def parse_sortby(raw, keys):
    key = raw.removeprefix("-")
    if key not in keys:
        raise InvalidInput(f"sortby must be one of {', '.join(keys)} (prefix - for descending), got {raw[:40]!r}")
    return raw


def sort_rows(rows, sortby, *, name):
    """Sort aggregated rows (a few hundred users or nodes) in place by one column, ties by `name`;
    rows without a value (no failure rate yet) go last whichever the direction."""
    key = sortby.removeprefix("-")
    present = sorted((row for row in rows if row[key] is not None), key=lambda row: row[name])
    present.sort(key=lambda row: row[key], reverse=sortby.startswith("-"))  # stable: ties stay by name
    rows[:] = present + [row for row in rows if row[key] is None]


def get_site(name):
    site = select_sites().filter(name=name).first()
    if site is None:
        raise NotFound(f"no site named {name!r}")
    return site


# ---------------------------------------------------------------- the site list


def site_list(request):
    try:
        window = job_window(request.GET, default_hours=SITE_WINDOW_HOURS)
        listing = run_listing(request, filterset_class=SiteFilterSet, queryset=Site.objects.all(), columns=SITE_COLUMNS)
    except ServiceError as error:
        return error_page(request, error)
    listing.window = window  # the window applies to the job counts, and the head's selector sets it
    listing.rows = _site_rows(listing.rows, window)
    data = listing.envelope()
    data["meta"]["states"] = {"active": list(selectors.ACTIVE_STATES), "final": list(selectors.FINAL_STATE_ORDER)}
    active_states = _shown(selectors.ACTIVE_STATES, listing.rows)
    final_states = _shown(selectors.FINAL_STATE_ORDER, listing.rows)
    context = {
        "listing": listing, "rows": listing.rows, "noun": "site", "window": window,
        "active_states": active_states, "final_states": final_states,
        "n_columns": len(active_states) + len(final_states) + 7,
        "window_qs": urlencode(window_params(request.GET, window)), "all_time_qs": urlencode(ALL_TIME),
        "site_states": SiteStatus, "cloud_sizes": dict(listing.facets.get("cloud", [])),
        "grouped": listing.sortby.removeprefix("-") == "cloud",  # a row per cloud only when sorted by cloud
    }  # fmt: skip
    return render_page(request, "sites/site_list.html", context, json_data=data)


def _site_rows(rows, window):
    site_ids = [row["id"] for row in rows]
    counts = selectors.job_counts_by_site(window=window, site_ids=site_ids)
    storage = selectors.storage_by_site(site_ids=site_ids)
    now = timezone.now()
    sites = []
    for row in rows:
        site_id = row.pop("id")
        site = {
            "name": row["name"], "cloud": row["cloud__name"], "tier": row["tier"], "status": row["status"],
            "grid_flavour": row["grid_flavour"], "max_memory_mb": row["max_memory_mb"],
            "max_disk_mb": row["max_disk_mb"], "max_walltime_s": row["max_walltime_s"], "cores": row["cores"],
            "max_running_jobs": row["max_running_jobs"], "comment": row["comment"],
            "last_pilot_contact": row["pilot_activity__last_contact_at"],
            "storage_bytes": storage.get(site_id) or 0,
            "jobs": _all_states(counts.get(site_id, {})),
        }  # fmt: skip
        site["failure_pct"] = _failure_pct(site["jobs"])
        site["alerts"] = site_alerts(site, now)
        sites.append(site)
    return sites


def _all_states(counts):
    return {state.value: counts.get(state, 0) for state in selectors.ALL_STATES}


def _failure_pct(jobs):
    ended = jobs["finished"] + jobs["failed"]
    return round(100 * jobs["failed"] / ended, 1) if ended else None


def _shown(states, rows):
    """The state columns worth a column: the usual ones, and any other one that has jobs on this page."""
    return [state for state in states if state in ALWAYS_SHOWN or any(row["jobs"][state] for row in rows)]


def site_alerts(site, now):
    """What needs a look, as {kind: text}; the page colours the cell of each kind."""
    jobs, alerts = site["jobs"], {}
    if jobs["failed"] > jobs["finished"]:
        alerts["failures"] = f"more failed ({jobs['failed']}) than finished ({jobs['finished']}) jobs in the window"
    contact = site["last_pilot_contact"]
    if jobs["activated"] and pilots_silent(contact, now):
        alerts["pilots"] = f"{jobs['activated']} activated jobs but no pilot contact for more than 1 h"
    if jobs["activated"] and site["status"] == SiteStatus.OFFLINE:
        alerts["status"] = "offline: its activated jobs will not be given to pilots"
    if site["max_running_jobs"] and jobs["running"] >= site["max_running_jobs"]:
        alerts["limit"] = f"at its running-job limit ({site['max_running_jobs']})"
    return alerts


# ---------------------------------------------------------------- one site


def site_detail(request, name):
    try:
        refuse_unknown(request.GET, WINDOW_PARAMS)
        window = job_window(request.GET, default_hours=SITE_WINDOW_HOURS)
        site = get_site(name)
    except ServiceError as error:
        return error_page(request, error)
    activity = getattr(site, "pilot_activity", None)
    jobs = _all_states(selectors.job_counts_by_site(window=window, site_ids=[site.pk]).get(site.pk, {}))
    nodes = _top_nodes(site, window)
    files = _with_file_links(selectors.recent_site_files(site=site))
    failures = failures_by_code(selectors.site_failed_jobs(site=site, window=window))
    fields = {field.name: getattr(site, field.attname) for field in site._meta.fields if field.name != "cloud"}
    summary = {**fields, "cloud": site.cloud.name}
    last_contact = activity.last_contact_at if activity else None
    transfers, throughput = site_transfers(site_id=site.pk, window=window)
    data = {
        "site": summary,
        "window": window.as_dict(),
        "last_pilot_contact": last_contact,
        "storage_bytes": selectors.storage_by_site(site_ids=[site.pk]).get(site.pk) or 0,
        "storage_space": selectors.storage_space(site),
        "jobs_by_state": jobs,
        "alerts": site_alerts({**summary, "jobs": jobs, "last_pilot_contact": last_contact}, timezone.now()),
        "why_jobs_wait": site_waiting_summary(site),
        "activity_unit": "day" if selectors.activity_by_day(window) else "hour",
        "activity": selectors.site_activity(site=site, window=window),
        "failures": failures,
        "worker_nodes": nodes,
        "recent_files": files,
        # Transfers in and out: queued/submitted whatever their age, done/failed that ended in the window.
        "transfers": {"in": transfers["in"], "out": transfers["out"], "throughput": throughput},
        "subscriptions_by_state": site_subscription_counts(site_id=site.pk),
    }
    context = {
        "site": site, "data": data, "window": window, "all_time_qs": urlencode(ALL_TIME),
        "window_qs": urlencode(window_params(request.GET, window)),
        "active_jobs": [(state, jobs[state]) for state in selectors.ACTIVE_STATES if jobs[state]],
        "final_jobs": [(state, jobs[state]) for state in selectors.FINAL_STATE_ORDER],
        "bars": _activity_bars(data["activity"]), "axis": _axis_labels(data["activity"]),
        "hours_options": WINDOW_CHOICES,
        "failures": failures, "nodes": nodes, "files": files,
        "history_figure": history_figure(site=site, title=f"{site.name}: jobs by state, last 48 h"),
        "transfer_history_figure": transfer_history_figure(site=site, title=f"{site.name}: transfers in, last 48 h"),
        "storage_history_figure": storage_history_figure(site=site, title=f"{site.name}: storage, last 48 h"),
        "transfer_rows": [(state, transfers["in"][state], transfers["out"][state]) for state in TransferState.values],
        "subscription_rows": list(data["subscriptions_by_state"].items()), "all_time": ALL_TIME["days"],
        "transfer_help": dict(TransferState.choices), "subscription_help": dict(SubscriptionState.choices),
    }  # fmt: skip
    return render_page(request, "sites/site_detail.html", context, json_data=data)


def _top_nodes(site, window):
    nodes = selectors.worker_nodes(site=site, window=window)
    selectors.mark_suspect_nodes(nodes, selectors.site_failure_pct(nodes))
    nodes.sort(key=lambda node: (-node["jobs"], node["node"]))
    return nodes[:TOP_NODES]


def _with_file_links(files):
    for row in files:
        row["file_url"] = reverse("file-page", args=[row["file__lfn"]])
        dataset = row["file__origin_dataset__name"]
        row["dataset_url"] = reverse("dataset-page", args=[dataset]) if dataset else None
    return files


def _axis_labels(activity, count=4):
    """A few bucket starts spread along the chart's axis (the first, some in between, the last)."""
    if not activity:
        return []
    step = max(1, (len(activity) - 1) // (count - 1))
    return [bucket["at"] for bucket in activity[::step]][:count]


def _activity_bars(activity):
    """Heights (% of the busiest bucket) of each state's segment, for the CSS bar chart."""
    peak = max((bucket["total"] for bucket in activity), default=0) or 1
    return [
        {"at": bucket["at"], "total": bucket["total"],
         "segments": [(state, bucket["counts"].get(state, 0), 100 * bucket["counts"].get(state, 0) / peak)
                      for state in selectors.FINAL_STATE_ORDER if bucket["counts"].get(state)]}
        for bucket in activity
    ]  # fmt: skip


# ---------------------------------------------------------------- worker nodes of a site


def node_list(request, site):
    try:
        refuse_unknown(request.GET, (*WINDOW_PARAMS, "sortby"))
        window = job_window(request.GET, default_hours=24)
        sortby = parse_sortby(request.GET.get("sortby") or "-failed", NODE_SORT_KEYS)
        site_obj = get_site(site)
    except ServiceError as error:
        return error_page(request, error)
    nodes = selectors.worker_nodes(site=site_obj, window=window)
    site_pct = selectors.site_failure_pct(nodes)
    selectors.mark_suspect_nodes(nodes, site_pct)
    sort_rows(nodes, sortby, name="node")
    totals = {
        key: sum(node[key] for node in nodes) for key in ("jobs", "active", "finished", "failed", "cancelled", "closed")
    }
    data = {
        "meta": {"site": site_obj.name, "window": window.as_dict(), "sortby": sortby, "total": len(nodes),
                 "site_failure_pct": site_pct, "suspects": sum(node["suspect"] for node in nodes)},
        "totals": totals,
        "rows": nodes,
    }  # fmt: skip
    context = {
        "site": site_obj, "data": data, "nodes": nodes, "window": window, "sortby": sortby, "totals": totals,
        "window_qs": urlencode(window_params(request.GET, window)), "hours_options": WINDOW_CHOICES,
        "headers": sort_headers(NODE_HEADERS, sortby), "keep": kept_params(request.GET),
        "suspect_rule": {"min_failed": selectors.SUSPECT_MIN_FAILED, "min_rate": selectors.SUSPECT_MIN_RATE,
                         "margin": selectors.SUSPECT_MARGIN},
    }  # fmt: skip
    return render_page(request, "summaries/nodes.html", context, json_data=data)

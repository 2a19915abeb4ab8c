"""The scheduler status page: pilot factories, the sites they serve, their pilots, recent failures.

The 2007 monitor's "scheduler status page" and "list and status of (non) operating schedulers".
Reads come from sites/factory/selectors.py (and demand.py for the jobs waiting at each site);
every page has its JSON twin (?json).
"""

import uuid
from collections import Counter
from datetime import timedelta
from urllib.parse import urlencode

from django.urls import reverse
from django.utils import timezone

from pandamon.errors import InvalidInput, NotFound, ServiceError
from sites.factory import demand
from sites.factory import selectors as factory_selectors
from sites.models import PilotState, Site

from .pages import error_page, render_page
from .site_pages import refuse_unknown

DEFAULT_HOURS = 24
HOURS_CHOICES = (1, 6, 12, 24, 48, 168)
MAX_HOURS = 30 * 24
STATES = [state.value for state in PilotState]
PILOT_LIST_LIMIT = 200


def _hours(params):
    raw = params.get("hours") or str(DEFAULT_HOURS)
    try:
        hours = int(raw)
    except ValueError:
        raise InvalidInput(f"hours must be a whole number of hours, got {raw[:20]!r}") from None
    if not 1 <= hours <= MAX_HOURS:
        raise InvalidInput(f"hours must be between 1 and {MAX_HOURS}")
    return hours


# ---------------------------------------------------------------- /scheduler/


def scheduler(request):
    try:
        refuse_unknown(request.GET, ("hours",))
        hours = _hours(request.GET)
    except ServiceError as error:
        return error_page(request, error)
    now = timezone.now()
    since = now - timedelta(hours=hours)
    factories = list(factory_selectors.factories())
    counts = factory_selectors.pilot_counts(since=since)
    data = {
        "window": {"hours": hours, "since": since},
        "factories": [_factory_row(factory, counts, now) for factory in factories],
        "sites": _site_rows(factories, counts),
        "recent_failures": [_pilot_row(pilot) for pilot in factory_selectors.recent_failures(since=since)],
        "pilot_states": dict(PilotState.choices),
    }
    context = {"data": data, "hours": hours, "hours_options": HOURS_CHOICES, "states": STATES,
               "operating": sum(row["status"] == "operating" for row in data["factories"])}  # fmt: skip
    return render_page(request, "scheduler/scheduler.html", context, json_data=data)


def _factory_row(factory, counts, now):
    pilots = Counter()
    for (factory_id, _site_id), cell in counts.items():
        if factory_id == factory.pk:
            pilots.update(cell)
    status = factory_selectors.factory_status(factory, now)
    return {
        "name": factory.name, "host": factory.host, "pid": factory.pid, "plugin": factory.plugin,
        "version": factory.version, "sites": sorted(site.name for site in factory.sites.all()),
        "period_s": factory.period_s, "started_at": factory.started_at, "stopped_at": factory.stopped_at,
        "last_cycle_at": factory.last_cycle_at, "cycles": factory.cycles, "status": status,
        "silent_since": (factory.last_cycle_at or factory.started_at) if status == "silent" else None,
        "last_error": factory.last_error, "config": factory.config,
        "pilots": {state: pilots.get(state, 0) for state in STATES},
        "pilots_url": reverse("scheduler-pilots") + "?" + urlencode({"factory": factory.name}),
    }  # fmt: skip


def _site_rows(factories, counts):
    served = {}
    for factory in factories:
        for site in factory.sites.all():
            served.setdefault(site.pk, (site, []))[1].append(factory)
    # Sites with pilots in the window but no longer served still show (their pilots are counted).
    extra_ids = {site_id for _, site_id in counts} - set(served)
    for site in Site.objects.filter(pk__in=extra_ids):
        served[site.pk] = (site, [])
    sites = [site for site, _ in served.values()]
    activated = demand.activated_jobs(sites)
    held = demand.held_jobs(list(served))
    rows = []
    for site, site_factories in sorted(served.values(), key=lambda pair: pair[0].name):
        pilots = Counter()
        for (_, site_id), cell in counts.items():
            if site_id == site.pk:
                pilots.update(cell)
        rows.append({
            "site": site.name, "status": site.status, "max_running_jobs": site.max_running_jobs,
            "activated_jobs": activated.get(site.pk, 0), "jobs_held_by_pilots": held.get(site.pk, 0),
            "factories": [factory.name for factory in site_factories],
            "pilots": {state: pilots.get(state, 0) for state in STATES},
            "last_decisions": {factory.name: factory.last_decisions.get(site.name) for factory in site_factories
                               if factory.last_decisions.get(site.name)},
            "pilots_url": reverse("scheduler-pilots") + "?" + urlencode({"site": site.name}),
        })  # fmt: skip
    return rows


def _pilot_row(pilot):
    return {
        "id": str(pilot.id), "factory": pilot.factory.name, "site": pilot.site.name, "plugin": pilot.plugin,
        "batch_id": pilot.batch_id, "state": pilot.state, "submitted_at": pilot.submitted_at,
        "started_at": pilot.started_at, "last_contact_at": pilot.last_contact_at, "ended_at": pilot.ended_at,
        "node": pilot.node, "jobs_run": pilot.jobs_run, "exit_code": pilot.exit_code, "exit_reason": pilot.exit_reason,
        "url": reverse("scheduler-pilot", args=[pilot.id]),
    }  # fmt: skip


# ---------------------------------------------------------------- /scheduler/pilots/


def pilot_list(request):
    params = request.GET
    try:
        refuse_unknown(params, ("factory", "site", "state", "limit"))
        state = params.get("state", "")
        if state and state not in STATES:
            raise InvalidInput(f"state must be one of {', '.join(STATES)}, got {state[:20]!r}")
        limit = _limit(params.get("limit"))
    except ServiceError as error:
        return error_page(request, error)
    filters = {name: params[name] for name in ("factory", "site", "state") if params.get(name)}
    rows = [_pilot_row(pilot) for pilot in factory_selectors.pilots(**filters, limit=limit)]
    data = {"meta": {"filters": filters, "limit": limit, "shown": len(rows)}, "rows": rows}
    context = {"data": data, "rows": rows, "filters": filters, "states": STATES, "limit": limit}
    return render_page(request, "scheduler/pilot_list.html", context, json_data=data)


def _limit(raw):
    if not raw:
        return PILOT_LIST_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise InvalidInput("limit must be a number between 1 and 1000")
    return int(raw)


# ---------------------------------------------------------------- /scheduler/pilots/<id>/


def pilot_detail(request, pilot_id):
    try:
        refuse_unknown(request.GET, ())
        pilot = factory_selectors.pilot(_uuid(pilot_id))
        if pilot is None:
            raise NotFound(f"no pilot {pilot_id}")
    except ServiceError as error:
        return error_page(request, error)
    pandaids = factory_selectors.pilot_pandaids(pilot.pk)
    statuses = demand.job_statuses(pandaids)
    jobs = [{"pandaid": pandaid, "status": statuses.get(pandaid, "unknown"), "url": reverse("job-page", args=[pandaid])}
            for pandaid in pandaids]  # fmt: skip
    data = {"pilot": _pilot_row(pilot), "jobs": jobs, "pilot_states": dict(PilotState.choices)}
    return render_page(request, "scheduler/pilot_detail.html", {"data": data, "pilot": data["pilot"], "jobs": jobs},
                       json_data=data)  # fmt: skip


def _uuid(text):
    try:
        return uuid.UUID(str(text))
    except ValueError:
        raise NotFound(f"no pilot {str(text)[:60]!r}: a pilot id is a UUID") from None

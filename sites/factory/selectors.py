"""Reads of the pilot factory: operating or silent factories, pilots by state, recent failures."""

from collections import Counter, defaultdict
from datetime import timedelta

from django.db.models import Count

from sites.models import Pilot, PilotFactory, PilotJob, PilotState

LIVE = (PilotState.SUBMITTED, PilotState.RUNNING)
ENDED = (PilotState.FINISHED, PilotState.FAILED, PilotState.LOST)
FAILURES = (PilotState.FAILED, PilotState.LOST)
MISSED_CYCLES = 3
MIN_SILENCE = timedelta(minutes=2)


def factory_silence(period_s):
    """How long a factory may go without a cycle before it counts as silent (not operating)."""
    return max(timedelta(seconds=period_s * MISSED_CYCLES), MIN_SILENCE)


def factory_is_operating(factory, now):
    """Not stopped cleanly, and it started or completed a cycle recently."""
    if factory.stopped_at is not None:
        return False
    return now - (factory.last_cycle_at or factory.started_at) < factory_silence(factory.period_s)


def factory_status(factory, now):
    """'operating', 'silent' (no cycle for a few periods, not stopped cleanly) or 'stopped'."""
    if factory_is_operating(factory, now):
        return "operating"
    return "stopped" if factory.stopped_at is not None else "silent"


def factories():
    return PilotFactory.objects.prefetch_related("sites").order_by("name")


def live_pilots(factory):
    """The factory's submitted and running pilots, with their sites."""
    return list(Pilot.objects.filter(factory=factory, state__in=LIVE).select_related("site"))


def live_counts(factory):
    """{site_id: Counter(state)} of the factory's submitted and running pilots."""
    counts = defaultdict(Counter)
    rows = Pilot.objects.filter(factory=factory, state__in=LIVE).values_list("site_id", "state").annotate(n=Count("*"))
    for site_id, state, n in rows.order_by():
        counts[site_id][state] = n
    return counts


def pilot_counts(*, since):
    """{(factory_id, site_id): Counter(state)}: pilots now submitted or running, and those that ended since `since`."""
    counts = defaultdict(Counter)
    live = Pilot.objects.filter(state__in=LIVE)
    ended = Pilot.objects.filter(state__in=ENDED, ended_at__gte=since)
    for queryset in (live, ended):
        rows = queryset.values_list("factory_id", "site_id", "state").annotate(n=Count("*")).order_by()
        for factory_id, site_id, state, n in rows:
            counts[(factory_id, site_id)][state] += n
    return counts


def recent_failures(*, since, limit=50):
    return list(
        Pilot.objects.filter(state__in=FAILURES, ended_at__gte=since)
        .select_related("site", "factory")
        .order_by("-ended_at")[:limit]
    )


def pilots(*, factory=None, site=None, state=None, limit=200):
    queryset = Pilot.objects.select_related("site", "factory").order_by("-submitted_at")
    if factory:
        queryset = queryset.filter(factory__name=factory)
    if site:
        queryset = queryset.filter(site__name=site)
    if state:
        queryset = queryset.filter(state=state)
    return list(queryset[:limit])


def pilot(pilot_id):
    return Pilot.objects.select_related("site", "factory").filter(pk=pilot_id).first()


def pilot_pandaids(pilot_id, limit=1000):
    return list(
        PilotJob.objects.filter(pilot_id=pilot_id).order_by("pandaid").values_list("pandaid", flat=True)[:limit]
    )

"""Reads for alarms."""

from django.db.models import Case, IntegerField, Value, When

from .choices import AlarmState, Severity
from .models import Alarm, JobCountSnapshot


def live_alarms(*, limit):
    """Alarms not resolved, most severe then most recent first."""
    rank = Case(When(severity=Severity.CRITICAL, then=Value(0)), When(severity=Severity.WARNING, then=Value(1)),
                default=Value(2), output_field=IntegerField())  # fmt: skip
    live = Alarm.objects.exclude(state=AlarmState.RESOLVED).annotate(rank=rank)
    return live.order_by("rank", "-last_seen").values(
        "id", "severity", "state", "category", "subject_kind", "subject", "message", "count", "last_seen"
    )[:limit]


def job_history(*, site=None, since):
    """(edges, {status: [n per snapshot]}) of a site's snapshots (or the totals) since `since`."""
    rows = (
        JobCountSnapshot.objects.filter(site=site, taken_at__gte=since)
        .order_by("taken_at")
        .values_list("taken_at", "status", "n")
    )
    edges, series = [], {}
    for taken_at, status, n in rows:
        if not edges or edges[-1] != taken_at:
            edges.append(taken_at)
        series.setdefault(status, {})[taken_at] = n
    return edges, {status: [by_time.get(edge, 0) for edge in edges] for status, by_time in series.items()}

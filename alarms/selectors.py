"""Reads for alarms."""

from django.db.models import Case, IntegerField, Value, When

from .choices import AlarmState, Severity
from .models import Alarm


def live_alarms(*, limit):
    """Alarms not resolved, most severe then most recent first."""
    rank = Case(When(severity=Severity.CRITICAL, then=Value(0)), When(severity=Severity.WARNING, then=Value(1)),
                default=Value(2), output_field=IntegerField())  # fmt: skip
    live = Alarm.objects.exclude(state=AlarmState.RESOLVED).annotate(rank=rank)
    return live.order_by("rank", "-last_seen").values(
        "id", "severity", "state", "category", "subject_kind", "subject", "message", "count", "last_seen"
    )[:limit]

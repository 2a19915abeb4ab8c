"""Raising, acknowledging and resolving alarms."""

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from pandamon import roles
from pandamon.errors import Conflict, NotFound, PermissionDenied

from ..choices import SEVERITY_RANK, AlarmState
from ..models import Alarm


@dataclass(frozen=True)
class Finding:
    """What a rule or a probe reports: one problem with one subject."""

    category: str
    severity: str
    subject_kind: str
    subject: str
    message: str


def raise_alarm(finding, *, source, now=None):
    """Open an alarm, or update the live one for the same category and subject. Returns the Alarm.

    Two probes raising the same alarm at once both end up updating one row: the second
    insert hits the one-live-alarm constraint and retries as an update."""
    now = now or timezone.now()
    for _ in range(2):
        try:
            with transaction.atomic():
                return _upsert(finding, source, now)
        except IntegrityError:
            continue
    raise Conflict(f"alarm {finding.category} for {finding.subject} is being raised concurrently; try again")


def _upsert(finding, source, now):
    live = (
        Alarm.objects.select_for_update()
        .exclude(state=AlarmState.RESOLVED)
        .filter(category=finding.category, subject_kind=finding.subject_kind, subject=finding.subject)
        .first()
    )
    if live is None:
        return Alarm.objects.create(
            category=finding.category, severity=finding.severity, subject_kind=finding.subject_kind,
            subject=finding.subject, message=finding.message[:500], source=source[:160], first_seen=now, last_seen=now,
        )  # fmt: skip
    live.last_seen, live.count, live.message = now, live.count + 1, finding.message[:500]
    if SEVERITY_RANK[finding.severity] > SEVERITY_RANK[live.severity]:
        live.severity = finding.severity  # a worsening problem is escalated, never quietly downgraded
    live.save(update_fields=["last_seen", "count", "message", "severity"])
    return live


def _may_handle(user):
    return roles.is_admin(user) or roles.has_role(user, roles.SHIFTER)


def _live_alarm(user, alarm_id, verb):
    if not _may_handle(user):
        raise PermissionDenied(f"{verb} an alarm needs the {roles.SHIFTER} role")
    alarm = Alarm.objects.select_for_update().filter(pk=alarm_id).first()
    if alarm is None:
        raise NotFound(f"no alarm {alarm_id}")
    if alarm.state == AlarmState.RESOLVED:
        raise Conflict(f"alarm {alarm_id} is already resolved")
    return alarm


@transaction.atomic
def acknowledge(*, user, alarm_id):
    alarm = _live_alarm(user, alarm_id, "acknowledging")
    alarm.state, alarm.acknowledged_by, alarm.acknowledged_at = AlarmState.ACKNOWLEDGED, user, timezone.now()
    alarm.save(update_fields=["state", "acknowledged_by", "acknowledged_at"])
    return alarm


@transaction.atomic
def resolve(*, user, alarm_id):
    alarm = _live_alarm(user, alarm_id, "resolving")
    alarm.state, alarm.resolved_by, alarm.resolved_at = AlarmState.RESOLVED, user.username, timezone.now()
    alarm.save(update_fields=["state", "resolved_by", "resolved_at"])
    return alarm


def resolve_cleared(*, source, still_firing, now=None):
    """Resolve the live alarms a rule raised whose condition no longer holds. Returns how many."""
    keys = {(f.category, f.subject_kind, f.subject) for f in still_firing}
    live = Alarm.objects.exclude(state=AlarmState.RESOLVED).filter(source=source)
    cleared = [a.pk for a in live.only("pk", "category", "subject_kind", "subject")
               if (a.category, a.subject_kind, a.subject) not in keys]  # fmt: skip
    return Alarm.objects.filter(pk__in=cleared).update(
        state=AlarmState.RESOLVED, resolved_by=source[:150], resolved_at=now or timezone.now()
    )

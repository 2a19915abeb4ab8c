"""Alarm mails: subscribers get one mail listing the open alarms they asked for, when an alarm is
raised and again at most once per quiet period while it keeps firing (acknowledged ones are quiet)."""

from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.core.mail import get_connection, send_mass_mail
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from ..choices import CHANNEL_ARROW, SEVERITY_RANK, AlarmState, SubjectKind
from ..models import Alarm, AlarmSubscription


def mail_alarms(now=None):
    """Mail the alarms that are due to their subscribers; returns how many mails were sent."""
    now = now or timezone.now()
    quiet = timedelta(minutes=settings.PANDA_ALARMS["QUIET_MINUTES"])
    with transaction.atomic():
        due = list(
            Alarm.objects.select_for_update(skip_locked=True)
            .filter(state=AlarmState.OPEN)
            .filter(Q(notified_at__isnull=True) | Q(notified_at__lt=now - quiet, last_seen__gt=F("notified_at")))
            .order_by("category", "subject")
        )
        if not due:
            return 0
        mails = _mails(due)
        if mails:
            send_mass_mail(mails, fail_silently=False, connection=get_connection())
        Alarm.objects.filter(pk__in=[alarm.pk for alarm in due]).update(notified_at=now)
    return len(mails)


def wants(subscription, alarm):
    if subscription.category and subscription.category != alarm.category:
        return False
    if subscription.site and subscription.site not in _sites_of(alarm):
        return False
    return SEVERITY_RANK[alarm.severity] >= SEVERITY_RANK[subscription.min_severity]


def _sites_of(alarm):
    """The sites an alarm is about: its site, or both ends of its channel."""
    if alarm.subject_kind == SubjectKind.SITE:
        return {alarm.subject}
    if alarm.subject_kind == SubjectKind.CHANNEL:
        return set(alarm.subject.split(CHANNEL_ARROW, 1))
    return set()


def _mails(due):
    per_user = defaultdict(dict)
    for subscription in AlarmSubscription.objects.select_related("user"):
        for alarm in due:
            if subscription.user.email and wants(subscription, alarm):
                per_user[subscription.user][alarm.pk] = alarm
    base = settings.PANDA["PORTAL_URL"].rstrip("/")
    mails = []
    for user, alarms in per_user.items():
        lines = [f"[{a.severity}] {a.category} {a.subject_kind} {a.subject}: {a.message} (seen {a.count}x)"
                 for a in alarms.values()]  # fmt: skip
        lines += ["", f"Alarm panel: {base}/alarms/"]
        subject = f"PanDA alarms: {len(alarms)} open" + (
            f", {sum(a.severity == 'critical' for a in alarms.values())} critical"
        )
        mails.append((subject, "\n".join(lines), settings.DEFAULT_FROM_EMAIL, [user.email]))
    return mails

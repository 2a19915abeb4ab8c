"""The periodic recount that corrects drift in the incremental counters, and reports it.

Drift can come from a state-log row the fold skipped (a transaction open longer than the
fold's lag), a job deleted by hand, or a bug; the report names the accounts and amounts so
that a recurring drift gets looked at instead of silently papered over."""

from collections import Counter, defaultdict
from datetime import timedelta

from django.db import transaction
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from jobs.choices import LIVE_STATES
from jobs.models import Job
from jobs.services.status_log import lock_cursor

from ..models import AccountUsage, DailyUsage
from .accounting import ENDINGS, LOG_CURSOR, accounts_of, bucket, fold_everything

DAILY_COLUMNS = ("submitted", "finished", "failed", "cancelled", "cpu_seconds")


def reconcile(*, days=2):
    """Fold what is pending, recount live jobs and the last `days` days from the job table, fix the
    counters and return the drift found: {"live": {account: {...}}, "daily": {...}}."""
    with transaction.atomic():
        # Holding the cursor lock keeps a concurrent fold from adding to what we are recounting.
        lock_cursor(LOG_CURSOR)
        fold_everything(lag_seconds=0)
        live_drift = _fix_live(_recount_live())
        since = timezone.now().date() - timedelta(days=days - 1)
        daily_drift = _fix_daily(_recount_daily(since), since)
    return {"live": live_drift, "daily": daily_drift}


def _recount_live():
    counts = defaultdict(Counter)
    rows = Job.objects.filter(status__in=LIVE_STATES).values_list("prod_user_name", "working_group", "status")
    for user, group, status, n in rows.annotate(n=Count("pandaid")).order_by():
        for account in accounts_of(user, group):
            counts[account][bucket(status)] += n
    return counts


def _fix_live(actual):
    drift = {}
    stored = {(row.kind, row.name): row for row in AccountUsage.objects.select_for_update()}
    for account in set(actual) | set(stored):
        row = stored.get(account) or AccountUsage(kind=account[0], name=account[1])
        want = actual.get(account, Counter())
        off = {"queued": row.queued_jobs - want["queued"], "running": row.running_jobs - want["running"]}
        if any(off.values()):
            drift[f"{account[0]}:{account[1]}"] = {name: value for name, value in off.items() if value}
            row.queued_jobs, row.running_jobs = want["queued"], want["running"]
            row.save()
    return drift


def _recount_daily(since):
    counts = defaultdict(Counter)
    created = Job.objects.filter(creation_time__date__gte=since).annotate(day=TruncDate("creation_time"))
    for user, group, day, n in (
        created.values_list("prod_user_name", "working_group", "day").annotate(n=Count("pandaid")).order_by()
    ):
        for account in accounts_of(user, group):
            counts[(account, day)]["submitted"] += n
    ended = Job.objects.filter(status__in=ENDINGS, state_change_time__date__gte=since).annotate(
        day=TruncDate("state_change_time")
    )
    rows = ended.values_list("prod_user_name", "working_group", "day", "status").annotate(
        n=Count("pandaid"), cpu=Sum("cpu_consumption_time")
    )
    for user, group, day, status, n, cpu in rows.order_by():
        for account in accounts_of(user, group):
            counts[(account, day)][ENDINGS[status]] += n
            counts[(account, day)]["cpu_seconds"] += cpu or 0
    return counts


def _fix_daily(actual, since):
    drift = {}
    stored = {((row.kind, row.name), row.day): row for row in DailyUsage.objects.filter(day__gte=since)}
    for key in set(actual) | set(stored):
        (kind, name), day = key
        row = stored.get(key) or DailyUsage(kind=kind, name=name, day=day)
        want = actual.get(key, Counter())
        off = {column: getattr(row, column) - want[column] for column in DAILY_COLUMNS}
        if any(off.values()):
            drift[f"{kind}:{name}:{day}"] = {column: value for column, value in off.items() if value}
            for column in DAILY_COLUMNS:
                setattr(row, column, want[column])
            row.save()
    return drift

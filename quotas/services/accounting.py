"""Usage accounting: the job state log folded into per-account counters, incrementally.

Every state change of a job is a JobStatusLog row (the services, the single-statement
getJob and job creation all write one). The fold reads the rows written since its last
run, in id order, and turns them into deltas: a job leaving `activated` for `sent` is one
queued job less and one running job more for its user (and for its physics group when it
was submitted as one); a job ending adds to the day's finished/failed/cancelled counts and
CPU time. The hot paths (getJob, updateJob) pay nothing for this.

Rows are only read once they are `lag` seconds old (see jobs.selectors.status_changes_after).
A row whose transaction stays open longer than the lag is missed; the periodic recount
(reconcile.py) corrects that and reports it as drift.
"""

from collections import Counter, defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from jobs.choices import FINAL_STATES, PILOT_STATES, QUEUED_STATES
from jobs.selectors import status_changes_after
from pandamon.models import LogCursor

from ..choices import AccountKind
from ..models import AccountUsage, DailyUsage

LOG_CURSOR = "quota-accounting"
# A job that ends counts under one of these daily columns; `closed` (ended by the system
# before it ran) counts as cancelled.
ENDINGS = {"finished": "finished", "failed": "failed", "cancelled": "cancelled", "closed": "cancelled"}


def bucket(status):
    """'queued', 'running' or None (not created yet, or ended)."""
    if status in QUEUED_STATES:
        return "queued"
    if status in PILOT_STATES:
        return "running"
    return None


def accounts_of(prod_user_name, working_group):
    """The accounts a job counts for: its user, and its physics group when submitted as one."""
    accounts = []
    if prod_user_name:
        accounts.append((AccountKind.USER, prod_user_name))
    if working_group:
        accounts.append((AccountKind.GROUP, working_group))
    return accounts


def fold_job_events(*, lag_seconds=None, batch=None):
    """Fold the state changes logged since the last fold into the counters. Returns how many were folded.

    Concurrent folds serialise on the cursor row, so no change is counted twice."""
    lag = settings.PANDA["ACCOUNTING_LAG_SECONDS"] if lag_seconds is None else lag_seconds
    batch = batch or settings.PANDA["ACCOUNTING_BATCH"]
    horizon = timezone.now() - timedelta(seconds=lag)
    with transaction.atomic():
        cursor, _ = LogCursor.objects.select_for_update().get_or_create(name=LOG_CURSOR)
        events = status_changes_after(
            cursor.last_id, older_than=horizon, limit=batch,
            job_fields=("prod_user_name", "working_group", "cpu_consumption_time"),
        )  # fmt: skip
        if not events:
            return 0
        live, daily = _deltas(events)
        _apply_live(live)
        _apply_daily(daily)
        cursor.last_id = events[-1]["id"]
        cursor.save(update_fields=["last_id", "updated_at"])
    return len(events)


def fold_everything(*, lag_seconds=None):
    """Fold batch after batch until nothing older than the lag is left; returns the total folded."""
    total = 0
    while folded := fold_job_events(lag_seconds=lag_seconds):
        total += folded
    return total


def _deltas(events):
    live = defaultdict(Counter)  # account -> {"queued": +n, "running": -n}
    daily = defaultdict(Counter)  # (account, day) -> {"submitted": n, "finished": n, ..., "cpu_seconds": s}
    for event in events:
        old, new = event["old_status"], event["new_status"]
        for account in accounts_of(event["job__prod_user_name"], event["job__working_group"]):
            if bucket(old):
                live[account][bucket(old)] -= 1
            if bucket(new):
                live[account][bucket(new)] += 1
            day = event["changed_at"].date()
            if not old:
                daily[(account, day)]["submitted"] += 1
            if new in ENDINGS and old not in FINAL_STATES:
                daily[(account, day)][ENDINGS[new]] += 1
                daily[(account, day)]["cpu_seconds"] += event["job__cpu_consumption_time"] or 0
    return live, daily


def _apply_live(live):
    changed = {account: delta for account, delta in live.items() if any(delta.values())}
    AccountUsage.objects.bulk_create(
        [AccountUsage(kind=kind, name=name) for kind, name in changed], ignore_conflicts=True
    )
    for (kind, name), delta in changed.items():
        AccountUsage.objects.filter(kind=kind, name=name).update(
            queued_jobs=F("queued_jobs") + delta["queued"], running_jobs=F("running_jobs") + delta["running"]
        )


def _apply_daily(daily):
    DailyUsage.objects.bulk_create(
        [DailyUsage(kind=kind, name=name, day=day) for (kind, name), day in daily], ignore_conflicts=True
    )
    for ((kind, name), day), delta in daily.items():
        DailyUsage.objects.filter(kind=kind, name=name, day=day).update(
            **{column: F(column) + amount for column, amount in delta.items()}
        )

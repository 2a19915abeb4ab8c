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

from django.db.models import F

from jobs.choices import FINAL_STATES, PILOT_STATES, QUEUED_STATES
from jobs.services.status_log import consume_batch

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
    return consume_batch(LOG_CURSOR, job_fields=("prod_user_name", "working_group", "cpu_consumption_time"),
                         handle=_fold, lag_seconds=lag_seconds, batch=batch)  # fmt: skip


def _fold(events):
    live, daily = _deltas(events)
    _apply_live(live)
    _apply_daily(daily)


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

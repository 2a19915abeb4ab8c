"""Usage accounting: the incremental fold of the job state log equals a recount, and drift is reported."""

import random
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from jobs.choices import FINAL_STATES, JobStatus
from jobs.models import Job, JobStatusLog
from jobs.services import state, submission
from pandamon.models import PhysicsGroup
from quotas.choices import AccountKind
from quotas.models import AccountUsage, DailyUsage
from quotas.services import accounting, reconcile

from ..concurrency import run_together
from ..factories import SiteFactory, UserFactory

S = JobStatus
# Paths a job may take through the state machine, as the system drives them.
PATHS = [
    [S.ACTIVATED, S.SENT, S.RUNNING, S.HOLDING, S.FINISHED],
    [S.ACTIVATED, S.SENT, S.STARTING, S.RUNNING, S.FAILED],
    [S.ACTIVATED, S.CANCELLED],
    [S.ASSIGNED, S.ACTIVATED, S.SENT, S.RUNNING, S.TRANSFERRING, S.FINISHED],
    [S.CLOSED],
    [S.WAITING, S.DEFINED],
]


def submit(user, n, **fields):
    specs = [{"job_name": f"{user.username}.{i}", "transformation": "/bin/true", **fields} for i in range(n)]
    return submission.submit_jobs(submitter=user, specs=specs)


def live_counters():
    return {(row.kind, row.name): (row.queued_jobs, row.running_jobs) for row in AccountUsage.objects.all()}


def daily_counters():
    return {
        (row.kind, row.name, row.day): (row.submitted, row.finished, row.failed, row.cancelled, row.cpu_seconds)
        for row in DailyUsage.objects.all()
    }


@pytest.mark.django_db
def test_incremental_accounting_equals_a_recount_after_random_job_events():
    rng = random.Random(20261202)
    site = SiteFactory(name="BNL")
    users = [UserFactory(username=f"u{i}") for i in range(4)]
    higgs = PhysicsGroup.objects.create(name="phys-higgs")
    higgs.members.add(users[0], users[1])
    for user in users:
        submit(user, rng.randint(3, 8))
    for user in users[:2]:
        submit(user, 4, working_group="phys-higgs")
    jobs = list(Job.objects.order_by("pandaid"))
    for step in range(3):  # interleave the fold with the changes, as the periodic task does
        for job in jobs:
            path = PATHS[job.pandaid % len(PATHS)]
            for new in path[step * 2 : step * 2 + 2]:
                fields = {"computing_site": site} if new in (S.ACTIVATED, S.ASSIGNED) else {}
                if new in FINAL_STATES:
                    fields["cpu_consumption_time"] = rng.randint(60, 7200)
                state.transition(job, new, actor="test", **fields)
        accounting.fold_everything(lag_seconds=0)
    folded_live, folded_daily = live_counters(), daily_counters()

    drift = reconcile.reconcile()

    assert drift == {"live": {}, "daily": {}}
    assert live_counters() == folded_live and daily_counters() == folded_daily
    group = AccountUsage.objects.get(kind=AccountKind.GROUP, name="phys-higgs")
    active = Job.objects.filter(working_group="phys-higgs").exclude(status__in=FINAL_STATES)
    assert group.queued_jobs + group.running_jobs == active.count()
    today = DailyUsage.objects.get(kind=AccountKind.USER, name="u0", day=timezone.now().date())
    assert today.submitted == Job.objects.filter(prod_user_name="u0").count()


@pytest.mark.django_db
def test_the_fold_counts_each_change_once_and_waits_for_young_rows():
    user = UserFactory(username="alice")
    submit(user, 3)
    assert accounting.fold_job_events() == 0, "rows younger than the lag wait for the next fold"
    assert accounting.fold_job_events(lag_seconds=0) == 3
    assert accounting.fold_job_events(lag_seconds=0) == 0
    assert live_counters() == {(AccountKind.USER, "alice"): (3, 0)}


@pytest.mark.django_db
def test_the_recount_reports_and_corrects_drift():
    user = UserFactory(username="alice")
    submit(user, 2)
    accounting.fold_everything(lag_seconds=0)
    AccountUsage.objects.filter(name="alice").update(queued_jobs=7, running_jobs=1)
    Job.objects.filter(pk=Job.objects.first().pk).delete()  # a job deleted by hand

    drift = reconcile.reconcile()

    assert drift["live"] == {"user:alice": {"queued": 6, "running": 1}}
    assert list(drift["daily"].values()) == [{"submitted": 1}]
    assert live_counters() == {(AccountKind.USER, "alice"): (1, 0)}
    assert reconcile.reconcile() == {"live": {}, "daily": {}}


@pytest.mark.django_db
def test_a_final_job_counts_its_cpu_on_the_day_it_ended():
    user = UserFactory(username="alice")
    [pandaid] = submit(user, 1)
    job = Job.objects.get(pk=pandaid)
    for new in (S.ACTIVATED, S.SENT, S.RUNNING, S.HOLDING):
        state.transition(job, new, actor="test")
    state.transition(job, S.FINISHED, actor="test", cpu_consumption_time=5400)
    accounting.fold_everything(lag_seconds=0)
    row = DailyUsage.objects.get(name="alice")
    assert (row.submitted, row.finished, row.cpu_seconds) == (1, 1, 5400)
    assert live_counters().get((AccountKind.USER, "alice"), (0, 0)) == (0, 0)


@pytest.mark.django_db(transaction=True)
def test_concurrent_folds_never_count_a_change_twice():
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    user = UserFactory(username="alice")
    submit(user, 50)
    JobStatusLog.objects.update(changed_at=timezone.now() - timedelta(minutes=1))

    def fold():
        accounting.fold_job_events(lag_seconds=0, batch=7)
        accounting.fold_everything(lag_seconds=0)

    errors = run_together(fold, 4)
    assert errors == []
    assert live_counters() == {(AccountKind.USER, "alice"): (50, 0)}

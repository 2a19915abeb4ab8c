"""Operations history: snapshots of jobs by site and state, their retention, and their plots."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from alarms.models import JobCountSnapshot
from alarms.selectors import job_history
from alarms.services.history import take_snapshot
from jobs.choices import JobStatus

from ..factories import JobFactory, SiteFactory

pytestmark = pytest.mark.django_db


def test_a_snapshot_counts_live_jobs_and_jobs_ended_since_the_last_one():
    bnl, cern = SiteFactory(name="BNL"), SiteFactory(name="CERN")
    JobFactory.create_batch(3, computing_site=bnl, status=JobStatus.RUNNING)
    JobFactory(computing_site=cern, status=JobStatus.ACTIVATED)
    JobFactory(computing_site=bnl, status=JobStatus.FINISHED, modification_time=timezone.now() - timedelta(minutes=5))
    JobFactory(computing_site=bnl, status=JobStatus.FINISHED, modification_time=timezone.now() - timedelta(hours=2))
    take_snapshot()
    at_bnl = dict(JobCountSnapshot.objects.filter(site=bnl).values_list("status", "n"))
    assert at_bnl == {"running": 3, "finished": 1}, "only the job ended in the last interval counts"
    assert dict(JobCountSnapshot.objects.filter(site=None).values_list("status", "n")) == {
        "running": 3, "activated": 1, "finished": 1
    }  # fmt: skip
    later = timezone.now() + timedelta(minutes=10)
    take_snapshot(now=later)
    edges, series = job_history(site=bnl, since=timezone.now() - timedelta(hours=1))
    assert len(edges) == 2 and series["running"] == [3, 3] and series["finished"] == [1, 0]


def test_old_snapshots_are_dropped(settings):
    old = timezone.now() - timedelta(days=settings.PANDA["HISTORY_DAYS"] + 1)
    JobCountSnapshot.objects.create(taken_at=old, site=None, status="running", n=5)
    take_snapshot()
    assert not JobCountSnapshot.objects.filter(taken_at=old).exists()


def test_home_and_site_pages_plot_the_history():
    bnl = SiteFactory(name="BNL")
    JobFactory(computing_site=bnl, status=JobStatus.RUNNING)
    assert 'data-figure="history-figure"' not in Client().get("/").content.decode(), "nothing to plot yet"
    take_snapshot()
    for url in ("/", "/sites/BNL/"):
        assert 'data-figure="history-figure"' in Client().get(url).content.decode(), url


def test_the_workers_page_lists_every_periodic_worker_and_flags_the_late_ones():
    from pandamon.models import WorkerRun

    started = timezone.now()
    WorkerRun.objects.create(name="jobs.broker_defined_jobs", started_at=started,
                             finished_at=started + timedelta(seconds=2), status=WorkerRun.Status.DONE,
                             counts={"jobs": 7})  # fmt: skip
    WorkerRun.objects.create(name="quotas.reconcile", started_at=timezone.now() - timedelta(hours=5),
                             status=WorkerRun.Status.FAILED, error="boom")  # fmt: skip
    workers = {w["name"]: w for w in Client().get("/workers/", {"json": ""}).json()["workers"]}
    broker, reconcile = workers["jobs.broker_defined_jobs"], workers["quotas.reconcile"]
    assert (broker["late"], broker["last_duration_s"], broker["last_counts"]) == (False, 2.0, {"jobs": 7})
    assert (reconcile["late"], reconcile["failed_24h"], reconcile["last_error"]) == (True, 1, "boom")
    assert workers["alarms.snapshot_jobs"]["late"] is True, "never ran"
    runs = Client().get("/workers/", {"json": "", "name": "quotas.reconcile"}).json()["rows"]
    assert [r["name"] for r in runs] == ["quotas.reconcile"]

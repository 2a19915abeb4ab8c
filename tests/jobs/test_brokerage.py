import random
from collections import Counter

import pytest

from jobs.choices import JobStatus
from jobs.models import Job, JobStatusLog
from jobs.services import brokerage
from sites.choices import SiteStatus

from ..factories import JobFactory, SiteFactory

pytestmark = pytest.mark.django_db


def broker(seed=1):
    return brokerage.broker_defined_jobs(rng=random.Random(seed))


def test_jobs_go_only_to_online_sites_that_satisfy_their_limits():
    small = SiteFactory(name="SMALL", max_memory_mb=2000, cores=1)
    big = SiteFactory(name="BIG", max_memory_mb=16000, cores=8)
    SiteFactory(name="DOWN", status=SiteStatus.OFFLINE, max_memory_mb=64000)
    SiteFactory(name="NOBROKER", status=SiteStatus.BROKEROFF, max_memory_mb=64000)
    needs_memory = JobFactory.create_batch(20, min_ram_count=8000)
    needs_cores = JobFactory.create_batch(5, core_count=4)
    counts = broker()
    assert counts == {"jobs": 25, "activated": 25, "assigned": 0, "no_site": 0}
    for job in needs_memory + needs_cores:
        job.refresh_from_db()
        assert (job.status, job.computing_site_id) == (JobStatus.ACTIVATED, big.pk)
    assert not Job.objects.filter(computing_site=small).exists()
    log = JobStatusLog.objects.filter(new_status=JobStatus.ACTIVATED, actor="brokerage").first()
    assert log.reason == "brokered to BIG"


def test_a_job_no_site_can_take_stays_defined_with_a_diagnostic():
    SiteFactory(name="A", max_memory_mb=4000, max_walltime_s=3600)
    SiteFactory(name="B", max_memory_mb=8000, max_walltime_s=3600)
    job = JobFactory(min_ram_count=32000, max_walltime=7200)
    assert broker() == {"jobs": 1, "activated": 0, "assigned": 0, "no_site": 1}
    job.refresh_from_db()
    assert job.status == JobStatus.DEFINED
    assert job.brokerage_error_code == brokerage.NO_SITE
    assert job.brokerage_error_diag == (
        "no online site fits (2 online): memory 32000 MB exceeds the limit of 2 site(s); "
        "walltime 7200 s exceeds the limit of 2 site(s)"
    )
    assert job.brokered_at is not None


def test_unbrokerable_jobs_do_not_starve_new_ones():
    SiteFactory(name="A", max_memory_mb=4000)
    stuck = JobFactory.create_batch(3, min_ram_count=99999)
    brokerage.broker_defined_jobs(batch=3)
    fresh = JobFactory()
    brokerage.broker_defined_jobs(batch=1)  # the never-tried job comes first
    fresh.refresh_from_db()
    assert fresh.status == JobStatus.ACTIVATED
    assert all(Job.objects.get(pk=j.pk).status == JobStatus.DEFINED for j in stuck)


def test_jobs_given_a_site_stay_there_even_if_it_is_not_online_for_brokerage():
    test_site = SiteFactory(name="TESTSITE", status=SiteStatus.TEST)
    SiteFactory(name="OTHER")
    job = JobFactory(computing_site=test_site)
    broker()
    job.refresh_from_db()
    assert (job.status, job.computing_site_id) == (JobStatus.ACTIVATED, test_site.pk)


def test_a_job_given_an_offline_or_too_small_site_explains_why_it_waits():
    offline = SiteFactory(name="OFF", status=SiteStatus.OFFLINE)
    small = SiteFactory(name="TINY", max_memory_mb=1000)
    to_offline = JobFactory(computing_site=offline)
    too_big = JobFactory(computing_site=small, min_ram_count=2000)
    broker()
    to_offline.refresh_from_db()
    too_big.refresh_from_db()
    assert (to_offline.status, to_offline.brokerage_error_diag) == (JobStatus.DEFINED, "assigned site OFF is offline")
    assert too_big.brokerage_error_diag == "assigned site TINY cannot run it: memory 2000 MB > 1000 MB"


def test_weight_prefers_sites_with_running_jobs_and_short_queues():
    busy_queue = SiteFactory(name="QUEUED")
    productive = SiteFactory(name="PRODUCTIVE")
    JobFactory.create_batch(200, computing_site=busy_queue, status=JobStatus.ACTIVATED)
    JobFactory.create_batch(50, computing_site=productive, status=JobStatus.RUNNING)
    new = JobFactory.create_batch(100)
    broker(seed=7)
    chosen = Counter(Job.objects.get(pk=job.pk).computing_site.name for job in new)
    # weight(PRODUCTIVE) = 51/10 at first, weight(QUEUED) = 1/210: nearly everything goes to PRODUCTIVE.
    assert chosen["PRODUCTIVE"] >= 95


def test_one_batch_spreads_over_equal_sites():
    for name in ("S1", "S2", "S3", "S4"):
        SiteFactory(name=name)
    jobs = JobFactory.create_batch(400)
    broker(seed=3)
    chosen = Counter(Job.objects.get(pk=job.pk).computing_site.name for job in jobs)
    assert set(chosen) == {"S1", "S2", "S3", "S4"}
    assert min(chosen.values()) >= 50

"""The job status analyzer: a plain-language reason for each waiting state, from live data."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from jobs.analysis import explain, site_waiting_summary
from jobs.choices import JobStatus
from jobs.models import JobStatusLog
from sites.choices import SiteStatus
from sites.models import PilotActivity

from ..factories import JobFactory, SiteFactory

pytestmark = pytest.mark.django_db


def hours_ago(hours):
    return timezone.now() - timedelta(hours=hours)


def test_defined_job_that_no_online_site_can_run():
    SiteFactory(name="SMALL", max_memory_mb=2000)
    SiteFactory(name="DOWN", max_memory_mb=16000, status=SiteStatus.OFFLINE)
    job = JobFactory(status=JobStatus.DEFINED, min_ram_count=4000)
    assert "no online site satisfies memory 4000 MB (max at online sites 2000 MB)" in explain(job)


def test_defined_job_that_fits_waits_for_the_next_brokerage():
    SiteFactory(name="BIG", max_memory_mb=8000)
    lines = explain(JobFactory(status=JobStatus.DEFINED, min_ram_count=4000))
    assert lines[0].startswith("waiting for brokerage since") and "1 of 1 online sites can run it" in lines


def test_activated_job_at_a_site_without_pilots_and_its_queue_position():
    uta = SiteFactory(name="UTA")
    PilotActivity.objects.update_or_create(site=uta, defaults={"last_contact_at": hours_ago(2)})
    JobFactory(computing_site=uta, status=JobStatus.ACTIVATED, current_priority=2000)
    job = JobFactory(computing_site=uta, status=JobStatus.ACTIVATED, current_priority=1000,
                     state_change_time=hours_ago(3))  # fmt: skip
    lines = explain(job)
    assert lines[0] == "ready at UTA since 3 h; 1 activated job(s) there go before it (higher priority or older)"
    assert "no pilot contact from UTA for 2 h" in lines
    summary = site_waiting_summary(uta)
    assert summary[0].startswith("ready at UTA since 3 h")


def test_activated_job_at_a_full_site():
    full = SiteFactory(name="FULL", max_running_jobs=1)
    PilotActivity.objects.update_or_create(site=full, defaults={"last_contact_at": timezone.now()})
    JobFactory(computing_site=full, status=JobStatus.RUNNING)
    lines = explain(JobFactory(computing_site=full, status=JobStatus.ACTIVATED))
    assert "FULL is at its limit of 1 running jobs (1 running)" in lines


def test_throttled_sent_assigned_and_waiting_jobs_say_why():
    throttled = JobFactory(status=JobStatus.THROTTLED)
    JobStatusLog.objects.create(job=throttled, old_status="activated", new_status="throttled",
                                changed_at=timezone.now(), actor="quota-throttler",
                                reason="running-jobs quota: 10 of 10 running")  # fmt: skip
    assert "running-jobs quota: 10 of 10 running" in explain(throttled)[0]
    sent = JobFactory(status=JobStatus.SENT, modification_host="wn12.bnl", state_change_time=hours_ago(0.2))
    assert "a pilot on wn12.bnl took it" in explain(sent)[0] and "sent timeout" in explain(sent)[0]
    assigned = JobFactory(status=JobStatus.ASSIGNED, computing_site=SiteFactory(name="BNL"))
    assert "brokered to BNL" in explain(assigned)[0]
    assert "input data is not available" in explain(JobFactory(status=JobStatus.WAITING))[0]
    assert explain(JobFactory(status=JobStatus.RUNNING)) == []


def test_the_job_page_and_its_json_carry_the_explanation():
    SiteFactory(name="SMALL", max_memory_mb=2000)
    job = JobFactory(status=JobStatus.DEFINED, min_ram_count=4000)
    assert "Why is it defined?" in Client().get(f"/jobs/{job.pk}/").content.decode()
    why = Client().get(f"/jobs/{job.pk}/", {"json": ""}).json()["why_waiting"]
    assert "no online site satisfies memory 4000 MB (max at online sites 2000 MB)" in why


def test_the_site_page_says_why_its_activated_jobs_wait():
    uta = SiteFactory(name="UTA")
    JobFactory(computing_site=uta, status=JobStatus.ACTIVATED, state_change_time=hours_ago(3))
    why = Client().get("/sites/UTA/", {"json": ""}).json()["why_jobs_wait"]
    assert "no pilot has ever called from UTA" in why

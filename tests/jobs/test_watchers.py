from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import tasks
from jobs.choices import FileStatus, FileType, JobStatus
from jobs.models import Job, JobFile
from jobs.services import watchers
from pandamon.models import WorkerRun

from ..factories import JobFactory, JobFileFactory, SiteFactory

pytestmark = pytest.mark.django_db


def ago(seconds):
    return timezone.now() - timedelta(seconds=seconds)


def test_lost_heartbeat_fails_silent_jobs_per_site_timeout_and_retries_them():
    fast = SiteFactory(name="FAST", heartbeat_timeout_s=600)
    slow = SiteFactory(name="SLOW", heartbeat_timeout_s=7200)
    silent = JobFactory(computing_site=fast, status=JobStatus.RUNNING, modification_time=ago(900), max_attempt=3)
    JobFileFactory(job=silent, type=FileType.OUTPUT)
    alive = JobFactory(computing_site=slow, status=JobStatus.RUNNING, modification_time=ago(900))
    assert watchers.fail_lost_heartbeats() == {"lost_heartbeat": 1}
    silent.refresh_from_db()
    assert silent.status == JobStatus.FAILED
    assert silent.job_dispatcher_error_code == watchers.LOST_HEARTBEAT
    assert silent.job_dispatcher_error_diag == "lost heartbeat: no pilot update for more than 600 s"
    assert abs((silent.end_time - ago(900)).total_seconds()) < 5  # the last heartbeat
    assert JobFile.objects.get(job=silent).status == FileStatus.FAILED
    assert Job.objects.get(pk=alive.pk).status == JobStatus.RUNNING
    retry = Job.objects.get(parent_id=silent.pk)
    assert (retry.attempt_nr, retry.status) == (2, JobStatus.DEFINED)
    assert watchers.fail_lost_heartbeats() == {"lost_heartbeat": 0}  # safe to run twice


def test_no_automatic_retry_beyond_max_attempt():
    site = SiteFactory(heartbeat_timeout_s=60)
    job = JobFactory(
        computing_site=site, status=JobStatus.STARTING, modification_time=ago(120), attempt_nr=3, max_attempt=3
    )
    watchers.fail_lost_heartbeats()
    assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED
    assert not Job.objects.filter(parent_id=job.pk).exists()


def test_sent_and_holding_timeouts(settings):
    site = SiteFactory()
    never_started = JobFactory(computing_site=site, status=JobStatus.SENT, modification_time=ago(31 * 60))
    just_sent = JobFactory(computing_site=site, status=JobStatus.SENT, modification_time=ago(60))
    urgent = JobFactory(
        computing_site=site, status=JobStatus.HOLDING, current_priority=900, modification_time=ago(4 * 3600)
    )
    normal = JobFactory(
        computing_site=site, status=JobStatus.HOLDING, current_priority=500, modification_time=ago(4 * 3600)
    )
    assert watchers.fail_sent_timeouts() == {"sent_timeout": 1}
    assert watchers.fail_holding_timeouts() == {"holding_timeout": 1}
    never_started.refresh_from_db()
    assert (never_started.status, never_started.job_dispatcher_error_code) == (JobStatus.FAILED, 102)
    assert Job.objects.get(pk=just_sent.pk).status == JobStatus.SENT
    assert Job.objects.get(pk=urgent.pk).job_dispatcher_error_code == 103
    assert Job.objects.get(pk=normal.pk).status == JobStatus.HOLDING


def test_periodic_tasks_record_their_runs():
    site = SiteFactory(heartbeat_timeout_s=60)
    JobFactory(computing_site=site, status=JobStatus.RUNNING, modification_time=ago(120), max_attempt=1)
    tasks.watch_lost_heartbeats()
    tasks.broker_defined_jobs()
    runs = {run.name: run for run in WorkerRun.objects.all()}
    assert runs["jobs.watch_lost_heartbeats"].status == WorkerRun.Status.DONE
    assert runs["jobs.watch_lost_heartbeats"].counts == {"lost_heartbeat": 1}
    assert runs["jobs.broker_defined_jobs"].counts == {"jobs": 0}
    assert runs["jobs.broker_defined_jobs"].finished_at is not None


def test_adder_sweep_finishes_holding_jobs_whose_task_was_lost(settings):
    job = JobFactory(status=JobStatus.HOLDING, modification_time=ago(600))
    tasks.retry_stuck_holding()
    assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED  # no report at all → failed, not stuck
    assert WorkerRun.objects.get(name="jobs.retry_stuck_holding").counts == {"finalized": 1}

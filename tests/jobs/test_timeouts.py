"""Jobs queued too long: defined → failed, assigned / activated → reassigned (closed + new attempt)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import tasks
from jobs.choices import FileType, JobStatus
from jobs.models import Job, JobStatusLog
from jobs.services import watchers
from pandamon.models import WorkerRun
from tasks.models import Task

from ..factories import JobFactory, JobFileFactory, SiteFactory

pytestmark = pytest.mark.django_db
HOUR = 3600


def ago(seconds):
    return timezone.now() - timedelta(seconds=seconds)


def last_reason(job):
    return JobStatusLog.objects.filter(job=job).order_by("-id").first().reason


def queued(status, age, **fields):
    fields.setdefault("max_attempt", 3)
    return JobFactory(status=status, modification_time=ago(age), state_change_time=ago(age), **fields)


def test_defined_too_long_fails_with_the_brokerage_diagnostic(settings):
    assert settings.PANDA["DEFINED_TIMEOUT"] == 4 * HOUR
    diag = "no online site fits (2 online): memory 64000 MB exceeds the limit of 2 site(s)"
    stuck = queued(JobStatus.DEFINED, 5 * HOUR, brokered_at=ago(60), brokerage_error_code=100,
                   brokerage_error_diag=diag, min_ram_count=64000)  # fmt: skip
    never_brokered = queued(JobStatus.DEFINED, 5 * HOUR)
    fresh = queued(JobStatus.DEFINED, 3 * HOUR, brokered_at=ago(60), brokerage_error_diag=diag)
    assert watchers.fail_defined_timeouts() == {"defined_timeout": 1}
    stuck.refresh_from_db()
    expected = f"defined timeout: no site took the job within 4 h: {diag}"
    assert (stuck.status, stuck.brokerage_error_code, stuck.brokerage_error_diag) == ("failed", 100, expected)
    # A brokerage error is not retried by default; the decision is in the log.
    assert not Job.objects.filter(parent_id=stuck.pk).exists()
    assert last_reason(stuck) == (
        f"{expected}; not retried (default: brokerage error 100 is not a known transient error "
        "and no retry rule matches)"
    )
    assert Job.objects.get(pk=never_brokered.pk).status == JobStatus.DEFINED
    assert Job.objects.get(pk=fresh.pk).status == JobStatus.DEFINED
    assert watchers.fail_defined_timeouts() == {"defined_timeout": 0}


def test_assigned_too_long_is_reassigned_with_a_diagnostic_naming_the_dispatch_block():
    site = SiteFactory(name="TOKYO")
    job = queued(JobStatus.ASSIGNED, 13 * HOUR, computing_site=site)
    JobFileFactory(job=job, type=FileType.INPUT, lfn="in.root", dispatch_dblock="panda.1.dis.abc_dis1")
    JobFileFactory(job=job, type=FileType.OUTPUT, lfn="out.root")
    waiting = queued(JobStatus.ASSIGNED, 11 * HOUR, computing_site=site)
    assert watchers.reassign_assigned_timeouts() == {"assigned_reassigned": 1, "assigned_failed": 0}
    job.refresh_from_db()
    diag = "assigned timeout: input not transferred to TOKYO within 12 h (dispatch block panda.1.dis.abc_dis1)"
    assert (job.status, job.job_dispatcher_error_code, job.job_dispatcher_error_diag) == ("closed", 107, diag)
    assert (job.task_buffer_error_code, job.task_buffer_error_diag) == (105, f"reassigned: {diag}")
    new = Job.objects.get(parent_id=job.pk)
    assert (new.status, new.computing_site_id, new.attempt_nr) == (JobStatus.DEFINED, None, 2)
    assert sorted(new.files.values_list("lfn", flat=True)) == ["in.root", "out.root"]
    assert not new.files.exclude(dispatch_dblock="").exists()
    assert last_reason(job) == f"{diag}; reassigned as {new.pk}"
    assert JobStatusLog.objects.get(job=new).reason == f"retry of {job.pk} (reassigned: {diag})"
    assert Job.objects.get(pk=waiting.pk).status == JobStatus.ASSIGNED
    assert watchers.reassign_assigned_timeouts() == {"assigned_reassigned": 0, "assigned_failed": 0}


def test_a_job_whose_attempts_are_used_up_fails_instead_of_being_reassigned():
    job = queued(JobStatus.ASSIGNED, 13 * HOUR, computing_site=SiteFactory(name="TOKYO"), attempt_nr=3)
    assert watchers.reassign_assigned_timeouts() == {"assigned_reassigned": 0, "assigned_failed": 1}
    job.refresh_from_db()
    assert (job.status, job.job_dispatcher_error_code) == (JobStatus.FAILED, 107)
    assert "dispatch block none recorded" in job.job_dispatcher_error_diag
    assert last_reason(job).endswith("; not reassigned: attempt 3 of at most 3")
    assert not Job.objects.filter(parent_id=job.pk).exists()


def test_activated_too_long_without_a_pilot_is_reassigned(settings):
    assert settings.PANDA["ACTIVATED_TIMEOUT"] == 48 * HOUR
    site = SiteFactory(name="QUIET")
    job = queued(JobStatus.ACTIVATED, 49 * HOUR, computing_site=site)
    recent = queued(JobStatus.ACTIVATED, 47 * HOUR, computing_site=site)
    assert watchers.reassign_activated_timeouts() == {"activated_reassigned": 1, "activated_failed": 0}
    job.refresh_from_db()
    assert (job.status, job.job_dispatcher_error_code) == (JobStatus.CLOSED, 108)
    assert job.job_dispatcher_error_diag == "activated timeout: no pilot at QUIET took the job within 48 h"
    new = Job.objects.get(parent_id=job.pk)
    assert (new.status, new.computing_site_id, new.attempt_nr) == (JobStatus.DEFINED, None, 2)
    assert Job.objects.get(pk=recent.pk).status == JobStatus.ACTIVATED


def test_task_jobs_keep_the_task_site_and_an_aborted_task_gets_no_new_attempts():
    site = SiteFactory(name="ONLY")
    pinned = Task.objects.create(name="t.pinned", type="production", owner_name="prod", transformation="t",
                                 input_dataset="in", output_dataset="out.pinned", site="ONLY")  # fmt: skip
    aborted = Task.objects.create(name="t.aborted", type="production", owner_name="prod", transformation="t",
                                  input_dataset="in", output_dataset="out.aborted", status="aborted")  # fmt: skip
    kept = queued(JobStatus.ACTIVATED, 49 * HOUR, computing_site=site, task_id=pinned.pk)
    dropped = queued(JobStatus.ACTIVATED, 49 * HOUR, computing_site=site, task_id=aborted.pk)
    assert watchers.reassign_activated_timeouts() == {"activated_reassigned": 1, "activated_failed": 1}
    assert Job.objects.get(parent_id=kept.pk).computing_site_id == site.pk
    assert Job.objects.get(pk=dropped.pk).status == JobStatus.FAILED
    assert last_reason(dropped).endswith(f"not reassigned: its task {aborted.pk} is aborted")


def test_holding_too_long_fails(settings):
    job = queued(JobStatus.HOLDING, 49 * HOUR, computing_site=SiteFactory(), current_priority=500)
    assert watchers.fail_holding_timeouts() == {"holding_timeout": 1}
    assert Job.objects.get(pk=job.pk).job_dispatcher_error_code == watchers.HOLDING_TIMEOUT


def test_timeouts_follow_the_settings(settings):
    settings.PANDA = {**settings.PANDA, "ACTIVATED_TIMEOUT": HOUR}
    job = queued(JobStatus.ACTIVATED, 2 * HOUR, computing_site=SiteFactory(name="QUIET"))
    watchers.reassign_activated_timeouts()
    assert Job.objects.get(pk=job.pk).job_dispatcher_error_diag.endswith("within 1 h")


def test_the_periodic_task_records_its_counts():
    site = SiteFactory(name="TOKYO")
    queued(JobStatus.DEFINED, 5 * HOUR, brokered_at=ago(60))
    queued(JobStatus.ASSIGNED, 13 * HOUR, computing_site=site)
    queued(JobStatus.ACTIVATED, 49 * HOUR, computing_site=site)
    tasks.watch_queued_timeouts()
    run = WorkerRun.objects.get(name="jobs.watch_queued_timeouts")
    assert run.status == WorkerRun.Status.DONE
    assert run.counts == {"defined_timeout": 1, "assigned_reassigned": 1, "assigned_failed": 0,
                          "activated_reassigned": 1, "activated_failed": 0}  # fmt: skip

import pytest

from jobs.choices import FileStatus, FileType, JobStatus
from jobs.models import Job, JobFile, JobReport
from jobs.services import adder

from ..factories import JobFactory, JobFileFactory, UserFactory, grant_role

pytestmark = pytest.mark.django_db


def holding_job(reported_state="finished", files=None, **kwargs):
    job = JobFactory(status=JobStatus.HOLDING, **kwargs)
    JobFileFactory(job=job, type=FileType.OUTPUT, lfn="out.root")
    JobFileFactory(job=job, type=FileType.LOG, lfn="job.log.tgz")
    JobReport.objects.create(
        job=job, reported_state=reported_state, output_files=files or {}, received_at=job.modification_time
    )
    return job


REPORT = {
    "out.root": {"guid": "g-out", "fsize": 1234, "adler32": "0badcafe", "surl": "file:///se/out.root"},
    "job.log.tgz": {"guid": "g-log", "fsize": 99, "adler32": "00c0ffee", "surl": "file:///se/job.log.tgz"},
}


def test_finished_report_records_outputs_and_finishes_the_job():
    job = holding_job(files=REPORT)
    assert adder.finalize_job(job.pk) == JobStatus.FINISHED
    out = JobFile.objects.get(job=job, lfn="out.root")
    assert (out.status, out.fsize, out.checksum, out.guid, out.surl) == (
        FileStatus.READY,
        1234,
        "ad:0badcafe",
        "g-out",
        "file:///se/out.root",
    )
    assert JobReport.objects.get(job=job).processed_at is not None
    assert adder.finalize_job(job.pk) is None  # idempotent: nothing left to do


def test_a_declared_output_missing_from_the_report_fails_the_job():
    job = holding_job(files={"job.log.tgz": REPORT["job.log.tgz"]})
    assert adder.finalize_job(job.pk) == JobStatus.FAILED
    job.refresh_from_db()
    assert job.ddm_error_code == adder.ADDER_MISSING_OUTPUT
    assert "out.root" in job.ddm_error_diag
    assert JobFile.objects.get(job=job, lfn="job.log.tgz").status == FileStatus.READY


def test_failed_report_fails_and_a_killed_job_ends_cancelled():
    failed = holding_job(reported_state="failed", files={"job.log.tgz": REPORT["job.log.tgz"]})
    assert adder.finalize_job(failed.pk) == JobStatus.FAILED
    killed = holding_job(reported_state="failed", command_to_pilot="tobekilled")
    assert adder.finalize_job(killed.pk) == JobStatus.CANCELLED


def test_owner_kills_queued_and_running_jobs(api, user):
    queued = JobFactory(owner=user, status=JobStatus.ACTIVATED)
    running = JobFactory(owner=user, status=JobStatus.RUNNING)
    done = JobFactory(owner=user, status=JobStatus.FINISHED)
    response = api.post(
        "/api/v1/jobs/kill/", {"pandaids": [queued.pk, running.pk, done.pk], "reason": "wrong input"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["results"] == {
        str(queued.pk): "cancelled",
        str(running.pk): "kill command sent to the pilot",
        str(done.pk): "already finished",
    }
    queued.refresh_from_db()
    running.refresh_from_db()
    assert queued.status == JobStatus.CANCELLED and queued.task_buffer_error_diag == "killed by alice: wrong input"
    assert running.status == JobStatus.RUNNING and running.command_to_pilot == "tobekilled"


def test_killing_someone_elses_job_is_refused_and_changes_nothing(api):
    mine = JobFactory(owner=UserFactory(username="alice"), status=JobStatus.ACTIVATED)
    theirs = JobFactory(owner=UserFactory(username="bob"), status=JobStatus.ACTIVATED)
    response = api.post("/api/v1/jobs/kill/", {"pandaids": [mine.pk, theirs.pk]}, format="json")
    assert response.status_code == 403
    assert f"you may not kill job(s) {theirs.pk}" in response.json()["error"]
    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.ACTIVATED}


def test_shifters_may_kill_any_job_and_unknown_ids_are_404(api, user):
    theirs = JobFactory(owner=UserFactory(username="bob"), status=JobStatus.DEFINED)
    assert api.post("/api/v1/jobs/kill/", {"pandaids": [theirs.pk, 999999]}, format="json").status_code == 404
    assert Job.objects.get(pk=theirs.pk).status == JobStatus.DEFINED
    grant_role(user, "shifter")
    assert api.post("/api/v1/jobs/kill/", {"pandaids": [theirs.pk]}, format="json").status_code == 200
    assert Job.objects.get(pk=theirs.pk).status == JobStatus.CANCELLED


def test_retry_creates_a_new_attempt_and_refuses_twice(api, user):
    failed = JobFactory(owner=user, status=JobStatus.FAILED, attempt_nr=1)
    JobFileFactory(job=failed, type=FileType.INPUT, lfn="in.root", fsize=5, checksum="ad:00000005")
    JobFileFactory(job=failed, type=FileType.LOG, lfn="j.log.tgz")
    response = api.post(f"/api/v1/jobs/{failed.pk}/retry/")
    assert response.status_code == 201
    new = Job.objects.get(pk=response.json()["pandaid"])
    assert (new.attempt_nr, new.parent_id, new.status) == (2, failed.pk, JobStatus.DEFINED)
    assert JobFile.objects.get(job=new, type=FileType.INPUT).lfn == "in.root"
    assert JobFile.objects.get(job=new, type=FileType.LOG).lfn == "j.2.log.tgz"
    again = api.post(f"/api/v1/jobs/{failed.pk}/retry/")
    assert again.status_code == 409 and "already retried" in again.json()["error"]
    running = JobFactory(owner=user, status=JobStatus.RUNNING)
    assert api.post(f"/api/v1/jobs/{running.pk}/retry/").status_code == 409

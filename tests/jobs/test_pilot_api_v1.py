"""The new pilot API (/api/v1/pilot/*): JSON in the {success, message, data} envelope, same
dispatch and reports as the legacy getJob/updateJob."""

import json

import pytest
from django.test import Client

from jobs.choices import FileType, JobStatus
from jobs.models import Job, JobReport

from ..factories import JobFactory, JobFileFactory, SiteFactory

pytestmark = pytest.mark.django_db


def call(path, body, token=None, method="post"):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    client = Client()
    if method == "get":
        response = client.get(f"/api/v1/pilot/{path}", body, **headers)
    else:
        response = client.post(f"/api/v1/pilot/{path}", json.dumps(body), content_type="application/json", **headers)
    return response.status_code, response.json()


def activated(site, **kwargs):
    job = JobFactory(computing_site=site, status=JobStatus.ACTIVATED, **kwargs)
    JobFileFactory(job=job, type=FileType.LOG, lfn=f"log.{job.pk}.tgz", dataset="ds.log", destination_dblock="ds.log")
    return job


def test_acquire_jobs_sends_the_getjob_key_set(site, pilot_token):
    job = activated(site)
    status, answer = call("acquire_jobs", {"site_name": site.name, "node": "wn1", "n_jobs": 1}, pilot_token)
    assert status == 200 and answer["success"] is True
    assert answer["data"]["StatusCode"] == 0
    [sent] = answer["data"]["jobs"]
    assert sent["PandaID"] == job.pk
    assert sent["logFile"] == f"log.{job.pk}.tgz"
    assert sent["ddmEndPointOut"] == site.name
    assert Job.objects.get(pk=job.pk).status == JobStatus.SENT


def test_acquire_jobs_without_work_says_so_in_the_envelope(site, pilot_token):
    status, answer = call("acquire_jobs", {"site_name": site.name}, pilot_token)
    assert status == 200
    assert answer["success"] is False and answer["message"] == "No jobs in PanDA"
    assert answer["data"]["StatusCode"] == 20
    assert f"no activated job for site {site.name}" in answer["data"]["errorDialog"]


def test_acquire_jobs_refuses_a_pilot_without_credential_and_changes_nothing(site):
    job = activated(site)
    status, answer = call("acquire_jobs", {"site_name": site.name})
    assert status == 403 and answer["success"] is False
    assert "needs a pilot credential" in answer["message"]
    assert Job.objects.get(pk=job.pk).status == JobStatus.ACTIVATED


def test_a_pilot_credential_of_another_site_is_refused(site, pilot_token):
    other = SiteFactory(name="OTHER")
    activated(other)
    status, answer = call("acquire_jobs", {"site_name": "OTHER"}, pilot_token)
    assert status == 403
    assert "not bound to site 'OTHER'" in answer["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "siteName is required"),
        ({"site_name": "BNL", "n_jobs": "lots"}, "nJobs must be a number"),
        ({"site_name": "BNL", "n_jobs": 1000}, "nJobs must be between 1 and 100"),
    ],
)
def test_bad_acquire_requests_get_a_clear_400(site, pilot_token, body, message):
    status, answer = call("acquire_jobs", body, pilot_token)
    assert status == 400 and answer["success"] is False
    assert message in answer["message"]


def test_update_job_walks_the_job_and_the_final_report_records_outputs(site, pilot_token):
    job = activated(site)
    call("acquire_jobs", {"site_name": site.name}, pilot_token)
    status, answer = call("update_job", {"job_id": job.pk, "job_status": "running", "site_name": site.name,
                                         "node": "wn1", "attempt_nr": job.attempt_nr}, pilot_token)  # fmt: skip
    assert status == 200 and answer == {"success": True, "message": "", "data": {"StatusCode": 0, "command": "NULL"}}
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING
    report = {f"log.{job.pk}.tgz": {"guid": "g-1", "fsize": 10, "adler32": "0000000a", "surl": "file:///se/x"}}
    status, answer = call("update_job", {"job_id": job.pk, "job_status": "finished", "site_name": site.name,
                                         "trans_exit_code": 0, "job_output_report": json.dumps(report)},
                          pilot_token)  # fmt: skip
    assert status == 200 and answer["data"]["command"] == "NULL"
    assert Job.objects.get(pk=job.pk).status == JobStatus.HOLDING
    assert JobReport.objects.get(job_id=job.pk).output_files == report


def test_update_job_with_a_bad_report_is_refused_without_change(site, pilot_token):
    job = activated(site)
    call("acquire_jobs", {"site_name": site.name}, pilot_token)
    status, answer = call("update_job", {"job_id": job.pk, "job_status": "finished", "site_name": site.name,
                                         "job_output_report": "not json"}, pilot_token)  # fmt: skip
    assert status == 400 and "xml is not valid JSON" in answer["message"]
    assert Job.objects.get(pk=job.pk).status == JobStatus.SENT


def test_update_jobs_bulk_applies_each_report_on_its_own(site, pilot_token):
    job = activated(site)
    call("acquire_jobs", {"site_name": site.name}, pilot_token)
    status, answer = call("update_jobs_bulk", {"job_list": [
        {"job_id": job.pk, "job_status": "running", "site_name": site.name},
        {"job_id": job.pk, "job_status": "running", "site_name": "NOWHERE"},
    ]}, pilot_token)  # fmt: skip
    assert status == 200
    first, second = answer["data"]
    assert first["success"] is True and first["data"]["command"] == "NULL"
    assert second["success"] is False and "unknown site 'NOWHERE'" in second["message"]
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING


def test_get_job_status_lists_each_id(site):
    job = activated(site)
    status, answer = call("get_job_status", {"job_ids": [job.pk, 999999]}, method="get")
    assert status == 200
    assert answer["data"] == [
        {"job_id": job.pk, "status": "activated", "attempt_number": job.attempt_nr},
        {"job_id": 999999, "status": "not found", "attempt_number": 0},
    ]


def test_the_wrong_method_and_a_non_object_body_are_refused(site, pilot_token):
    status, answer = call("get_job_status", {"job_ids": [1]}, pilot_token)
    assert status == 405 and "use GET" in answer["message"]
    response = Client().post("/api/v1/pilot/acquire_jobs", "[1]", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["message"] == "the request body must be a JSON object"

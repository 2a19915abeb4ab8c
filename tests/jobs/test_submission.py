import pytest
from rest_framework.test import APIClient

from jobs.choices import FileType, JobStatus
from jobs.models import Job, JobFile, JobStatusLog

from ..factories import grant_role

pytestmark = pytest.mark.django_db


def spec(**overrides):
    job = {"job_name": "ana", "transformation": "#!/bin/sh\necho hi\n", "job_parameters": "--n 3"}
    job.update(overrides)
    return job


def test_bulk_submission_returns_pandaids_in_order_and_stores_files(api, site):
    jobs = [
        spec(job_name=f"j{i}", input_files=[{"lfn": f"in{i}.root", "fsize": 10, "checksum": "ad:0000abcd"}],
             output_files=[{"lfn": f"out{i}.root", "dataset": "user.alice.test"}])
        for i in range(50)
    ]  # fmt: skip
    response = api.post("/api/v1/jobs/", jobs, format="json")
    assert response.status_code == 201, response.content
    pandaids = response.json()["pandaids"]
    assert len(pandaids) == 50
    stored = Job.objects.filter(pandaid__in=pandaids)
    assert [job.job_name for job in stored.order_by("pandaid")] == [f"j{i}" for i in range(50)]
    assert all(job.owner.username == "alice" for job in stored)
    first = JobFile.objects.filter(job_id=pandaids[0])
    assert sorted(first.values_list("type", "lfn")) == sorted(
        [(FileType.INPUT, "in0.root"), (FileType.OUTPUT, "out0.root"), (FileType.LOG, first.get(type="log").lfn)]
    )
    assert JobStatusLog.objects.filter(job_id__in=pandaids, old_status="", new_status=JobStatus.DEFINED).count() == 50


def test_jobs_wrapper_form_is_accepted(api, site):
    response = api.post("/api/v1/jobs/", {"jobs": [spec()]}, format="json")
    assert response.status_code == 201


@pytest.mark.parametrize(
    "bad,message",
    [
        ({"transformation": None}, "jobs.1.transformation"),
        ({"core_count": 0}, "jobs.1.core_count"),
        ({"min_ram_count": "lots"}, "jobs.1.min_ram_count"),
        ({"output_files": [{"lfn": "../etc/passwd"}]}, "jobs.1.output_files.0.lfn"),
        ({"input_files": [{"lfn": "a.root", "checksum": "md5:xyz"}]}, "jobs.1.input_files.0.checksum"),
        ({"prod_source_label": "Not A Label!"}, "jobs.1.prod_source_label"),
    ],
)
def test_one_bad_job_refuses_the_whole_submission_with_a_message(api, site, bad, message):
    bad_job = {key: value for key, value in spec(**bad).items() if value is not None}
    response = api.post("/api/v1/jobs/", [spec(), bad_job, spec()], format="json")
    assert response.status_code == 400
    assert response.json()["error"].startswith(f"invalid input: {message}")
    assert Job.objects.count() == 0 and JobFile.objects.count() == 0


def test_unknown_site_is_refused_and_nothing_is_written(api, site):
    response = api.post("/api/v1/jobs/", [spec(computing_site="BNL"), spec(computing_site="NOWHERE")], format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "jobs[1].computing_site: unknown site 'NOWHERE'"
    assert Job.objects.count() == 0


def test_not_json_and_empty_lists_are_refused(api):
    assert api.post("/api/v1/jobs/", "not json", content_type="application/json").status_code == 400
    response = api.post("/api/v1/jobs/", [], format="json")
    assert response.status_code == 400
    assert "jobs" in response.json()["error"]


def test_anonymous_submission_is_refused():
    response = APIClient().post("/api/v1/jobs/", [spec()], format="json")
    assert response.status_code in (401, 403)
    assert Job.objects.count() == 0


def test_production_jobs_need_the_production_manager_role(api, user):
    response = api.post("/api/v1/jobs/", [spec(prod_source_label="managed")], format="json")
    assert response.status_code == 403
    assert "production_manager" in response.json()["error"]
    grant_role(user, "production_manager")
    assert api.post("/api/v1/jobs/", [spec(prod_source_label="managed")], format="json").status_code == 201


def test_user_priority_drops_one_unit_per_five_queued_jobs(api):
    pandaids = api.post("/api/v1/jobs/", [spec() for _ in range(12)], format="json").json()["pandaids"]
    priorities = list(
        Job.objects.filter(pandaid__in=pandaids).order_by("pandaid").values_list("current_priority", flat=True)
    )
    assert priorities == [1000] * 5 + [999] * 5 + [998] * 2
    more = api.post("/api/v1/jobs/", [spec()], format="json").json()["pandaids"]
    assert Job.objects.get(pandaid=more[0]).current_priority == 1000 - 12 // 5


def test_submission_size_limit(api, settings):
    settings.PANDA = {**settings.PANDA, "MAX_JOBS_PER_SUBMISSION": 3}
    response = api.post("/api/v1/jobs/", [spec() for _ in range(4)], format="json")
    assert response.status_code == 400
    assert "at most 3" in response.json()["error"]


def test_job_read_endpoints_filter_and_show_details(api, site):
    pandaids = api.post(
        "/api/v1/jobs/", [spec(job_name="x"), spec(job_name="y", computing_site="BNL")], format="json"
    ).json()["pandaids"]
    listing = api.get("/api/v1/jobs/", {"jobname": "y"}).json()
    assert [row["pandaid"] for row in listing["results"]] == [pandaids[1]]
    detail = api.get(f"/api/v1/jobs/{pandaids[0]}/").json()
    assert detail["status_log"][0]["new_status"] in ("defined", "activated")
    assert {f["type"] for f in detail["files"]} == {"log"}
    assert api.get("/api/v1/jobs/", {"computingsite": "BNL"}).json()["results"][0]["pandaid"] == pandaids[1]
    for bad in ({"jobstatus": "nonsense"}, {"job_name": "y"}, {"hours": "-1"}):
        response = api.get("/api/v1/jobs/", bad)
        assert response.status_code == 400, bad
        assert response.json()["error"].startswith("invalid input:")
    assert api.get("/api/v1/jobs/123456789/").status_code == 404

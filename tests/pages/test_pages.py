import pytest
from django.test import Client

from jobs.choices import FileType, JobStatus
from jobs.services import state

from ..factories import JobFactory, JobFileFactory, SiteFactory

pytestmark = pytest.mark.django_db
PAGES = ["/", "/jobs/", "/sites/", "/workers/", "/datasets/", "/blocks/", "/errors/", "/plots/", "/users/",
         "/summary/usage/"]  # fmt: skip


@pytest.fixture
def grid_with_jobs():
    bnl = SiteFactory(name="BNL", tier=1)
    running = JobFactory(computing_site=bnl, cloud=bnl.cloud.name, status=JobStatus.ACTIVATED)
    for new in (JobStatus.SENT, JobStatus.STARTING, JobStatus.RUNNING):
        state.transition(running, new, actor="pilot@wn1")
    failed = JobFactory(computing_site=bnl, status=JobStatus.RUNNING)
    state.transition(failed, JobStatus.FAILED, actor="watcher", job_dispatcher_error_code=100,
                     job_dispatcher_error_diag="lost heartbeat: no pilot update for more than 600 s")  # fmt: skip
    JobFileFactory(job=failed, type=FileType.LOG, lfn="failed.log.tgz")
    JobFactory.create_batch(3, status=JobStatus.DEFINED)
    return running, failed


@pytest.mark.parametrize("url", PAGES)
def test_pages_render_when_empty(url):
    response = Client().get(url)
    assert response.status_code == 200
    assert b"<h1>" in response.content


@pytest.mark.parametrize("url", PAGES)
def test_pages_render_with_data_and_have_a_json_twin(grid_with_jobs, url):
    client = Client()
    assert client.get(url).status_code == 200
    twin = client.get(url, {"json": ""})
    assert twin.status_code == 200 and twin["Content-Type"] == "application/json"
    by_header = client.get(url, HTTP_ACCEPT="application/json").json()
    by_query = twin.json()
    for data in (by_header, by_query):  # the window's edge (and the last time bin's) moves with the clock
        (data.get("meta") or {}).pop("window", None)
        (data.get("meta") or {}).pop("bins", None)
    assert by_header == by_query


def test_job_list_counts_states_over_the_whole_selection(grid_with_jobs):
    data = Client().get("/jobs/", {"json": ""}).json()
    assert {f["value"]: f["count"] for f in data["facets"]["jobstatus"]} == {"running": 1, "failed": 1, "defined": 3}
    assert data["meta"]["total"] == 5
    filtered = Client().get("/jobs/", {"json": "", "jobstatus": "failed", "computingsite": "BNL"}).json()
    assert [row["status"] for row in filtered["rows"]] == ["failed"]


def test_job_page_explains_errors_and_shows_history(grid_with_jobs):
    _, failed = grid_with_jobs
    html = Client().get(f"/jobs/{failed.pk}/").content.decode()
    assert "lost heartbeat: no pilot update within the site&#x27;s heartbeat timeout" in html
    assert "failed.log.tgz" in html
    data = Client().get(f"/jobs/{failed.pk}/", {"json": ""}).json()
    assert data["errors"] == [
        {"component": "job_dispatcher", "code": 100, "diag": "lost heartbeat: no pilot update for more than 600 s",
         "meaning": "lost heartbeat: no pilot update within the site's heartbeat timeout"}
    ]  # fmt: skip
    assert [h["to"] for h in data["history"]] == ["failed"]


def test_bad_page_parameters_get_a_400_with_a_message():
    for params, message in [
        ({"hours": "x"}, "hours must be a number"),
        ({"jobstatus": "bogus"}, "invalid filter: jobstatus"),
    ]:
        response = Client().get("/jobs/", {**params, "json": ""})
        assert response.status_code == 400 and message in response.json()["error"]
    assert Client().get("/jobs/999999/").status_code == 404


def test_site_list_shows_counts_and_last_pilot_contact(grid_with_jobs):
    rows = Client().get("/sites/", {"json": ""}).json()["rows"]
    bnl = next(row for row in rows if row["name"] == "BNL")
    assert bnl["jobs"]["running"] == 1 and bnl["jobs"]["failed"] == 1
    assert bnl["last_pilot_contact"] is None


def test_navigation_links_point_at_portal_pages_not_the_api():
    html = Client().get("/").content.decode()
    for path in ("/jobs/", "/datasets/", "/blocks/", "/sites/", "/users/", "/errors/", "/plots/", "/summary/usage/",
                 "/workers/", "/api/docs/"):  # fmt: skip
        assert f'href="{path}"' in html
        assert Client().get(path).status_code == 200, path

"""The site list, a site's page and the worker-node summary: counts equal the ORM's, windows, links, errors."""

import html
import re
import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from datasets.models import Dataset, File, FileReplica
from jobs.choices import JobStatus
from jobs.models import Job
from sites.models import PilotActivity

from ..factories import JobFactory, SiteFactory

pytestmark = pytest.mark.django_db


def ago(**delta):
    return timezone.now() - timedelta(**delta)


def job(site, status, *, age=timedelta(minutes=10), node="", **fields):
    moment = timezone.now() - age
    return JobFactory(computing_site=site, cloud=site.cloud.name, status=status, modification_time=moment,
                      state_change_time=moment, modification_host=node, **fields)  # fmt: skip


def get_json(url, **params):
    response = Client().get(url, {**params, "json": ""})
    assert response.status_code == 200, response.content
    return response.json()


def hrefs(page_html):
    return [html.unescape(href) for href in re.findall(r'href="([^"]+)"', page_html)]


def jobs_total(href):
    """Follow a link to the jobs list and return how many jobs it selects."""
    assert href.startswith("/jobs/?"), href
    response = Client().get(href + "&json")
    assert response.status_code == 200, response.content
    return response.json()["meta"]["total"]


@pytest.fixture
def grid():
    bnl = SiteFactory(name="BNL", tier=1, cloud__name="USA", max_running_jobs=100)
    mwt2 = SiteFactory(name="MWT2", tier=2, cloud__name="USA")
    lyon = SiteFactory(name="LYON", tier=1, cloud__name="FRANCE")
    PilotActivity.objects.filter(site=bnl).update(last_contact_at=ago(minutes=2))
    PilotActivity.objects.filter(site=lyon).update(last_contact_at=ago(hours=3))  # silent pilots
    for _ in range(3):
        job(bnl, JobStatus.FINISHED, node="wn1.bnl", cpu_consumption_time=3600)
    job(bnl, JobStatus.FAILED, node="wn1.bnl", pilot_error_code=1099, pilot_error_diag="stage-in failed: no replica")
    for _ in range(6):  # a black hole: every job fails at once on wn9
        job(bnl, JobStatus.FAILED, node="wn9.bnl", pilot_error_code=1137, pilot_error_diag="No space left on device")
    job(bnl, JobStatus.FAILED, node="wn2.bnl", exe_error_code=65, exe_error_diag="segfault",
        pilot_error_code=1008, pilot_error_diag="general")  # fmt: skip
    job(bnl, JobStatus.FINISHED, node="wn2.bnl", age=timedelta(hours=30))  # outside the default window
    job(bnl, JobStatus.FAILED, node="wn9.bnl", age=timedelta(hours=30), pilot_error_code=1137)
    job(bnl, JobStatus.RUNNING, node="wn1.bnl")
    job(bnl, JobStatus.ACTIVATED, age=timedelta(days=40))  # queued long ago: still the site's load
    job(mwt2, JobStatus.FINISHED, node="wn1.mwt2")
    job(lyon, JobStatus.ACTIVATED)
    job(lyon, JobStatus.ACTIVATED)
    JobFactory(status=JobStatus.DEFINED)  # not brokered: no site
    return {"BNL": bnl, "MWT2": mwt2, "LYON": lyon}


def orm_count(site, status, since=None):
    jobs = Job.objects.filter(computing_site=site, status=status)
    return jobs.filter(modification_time__gte=since).count() if since else jobs.count()


# ---------------------------------------------------------------- the site list


def test_site_list_counts_equal_orm_counts(grid):
    rows = {row["name"]: row for row in get_json("/sites/")["rows"]}
    since = ago(hours=12)
    for name, site in grid.items():
        for status in JobStatus:
            final = status in (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.CLOSED)
            assert rows[name]["jobs"][status] == orm_count(site, status, since if final else None), (name, status)
    assert rows["BNL"]["jobs"]["activated"] == 1  # 40 days old, still counted
    assert rows["BNL"]["jobs"]["failed"] == 8 and rows["BNL"]["jobs"]["finished"] == 3


def test_site_list_window_widens_final_states_only(grid):
    rows = {row["name"]: row for row in get_json("/sites/", hours=48)["rows"]}
    assert rows["BNL"]["jobs"]["finished"] == 4 and rows["BNL"]["jobs"]["failed"] == 9
    assert rows["BNL"]["jobs"]["activated"] == 1
    data = get_json("/sites/", days=2)
    assert data["meta"]["window"]["hours"] == 48


def test_site_list_is_grouped_by_cloud_then_tier_and_filters_with_the_grammar(grid):
    data = get_json("/sites/")
    assert [row["name"] for row in data["rows"]] == ["LYON", "BNL", "MWT2"]
    assert {f["value"]: f["count"] for f in data["facets"]["cloud"]} == {"USA": 2, "FRANCE": 1}
    assert [row["name"] for row in get_json("/sites/", cloud="US*")["rows"]] == ["BNL", "MWT2"]
    assert [row["name"] for row in get_json("/sites/", name="!BNL", tier="1")["rows"]] == ["LYON"]
    assert [row["name"] for row in get_json("/sites/", sortby="-name")["rows"]] == ["MWT2", "LYON", "BNL"]


def test_site_list_flags_anomalies(grid):
    rows = {row["name"]: row for row in get_json("/sites/")["rows"]}
    assert set(rows["BNL"]["alerts"]) == {"failures"}  # 8 failed > 3 finished; pilots called 2 min ago
    assert set(rows["LYON"]["alerts"]) == {"pilots"}  # 2 activated, last contact 3 h ago
    assert rows["MWT2"]["alerts"] == {}
    page = Client().get("/sites/").content.decode()
    assert "alert-failures" in page and "alert-pilots" in page


def test_site_list_links_open_the_jobs_list_with_the_same_filter_and_window(grid):
    page = Client().get("/sites/").content.decode()
    links = hrefs(page)
    failed = "/jobs/?computingsite=BNL&jobstatus=failed&hours=12"
    activated = "/jobs/?computingsite=BNL&jobstatus=activated&days=3650"
    assert failed in links and activated in links
    assert jobs_total(failed) == 8
    assert jobs_total(activated) == 1
    wider = hrefs(Client().get("/sites/", {"days": "2"}).content.decode())
    assert "/jobs/?computingsite=BNL&jobstatus=failed&days=2" in wider
    assert jobs_total("/jobs/?computingsite=BNL&jobstatus=failed&days=2") == 9


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"hours": "abc"}, "hours must be a number"),
        ({"days": "0"}, "days must be greater than 0"),
        ({"days": "90"}, "at most 30 days"),
        ({"date_to": "2020-01-01"}, "bounded window"),
        ({"status": "sleeping"}, "invalid filter: status"),
        ({"colour": "red"}, "unknown parameter colour"),
        ({"sortby": "size"}, "sortby must be one of"),
    ],
)
def test_site_list_refuses_bad_parameters(grid, params, message):
    response = Client().get("/sites/", {**params, "json": ""})
    assert response.status_code == 400 and message in response.json()["error"]


# ---------------------------------------------------------------- a site's page


def test_site_page_jobs_by_state_and_activity_equal_orm_counts(grid):
    data = get_json("/sites/BNL/")
    since = ago(hours=12)
    assert data["jobs_by_state"]["failed"] == orm_count(grid["BNL"], JobStatus.FAILED, since) == 8
    assert data["jobs_by_state"]["activated"] == 1
    assert data["site"]["name"] == "BNL" and data["site"]["cloud"] == "USA"
    assert data["activity_unit"] == "hour"
    assert (
        sum(bucket["total"] for bucket in data["activity"])
        == Job.objects.filter(
            computing_site=grid["BNL"],
            status__in=["finished", "failed", "cancelled", "closed"],
            modification_time__gte=since,
        ).count()
    )
    assert len(data["activity"]) in (12, 13)  # the hours the window touches
    assert get_json("/sites/BNL/", days=7)["activity_unit"] == "day"


def test_site_page_failures_by_error_with_meaning_and_links(grid):
    data = get_json("/sites/BNL/")
    failures = {(f["component"], f["code"]): f for f in data["failures"]}
    assert (
        failures[("pilot", 1137)]["count"]
        == Job.objects.filter(
            computing_site=grid["BNL"], status="failed", pilot_error_code=1137, modification_time__gte=ago(hours=12)
        ).count()
        == 6
    )
    assert failures[("pilot", 1137)]["meaning"] == "stage-out failed"
    assert failures[("pilot", 1137)]["sample_diag"] == "No space left on device"
    assert failures[("exe", 65)]["count"] == 1 and failures[("pilot", 1008)]["count"] == 1  # both codes of one job
    assert data["failures"][0]["code"] == 1137  # most frequent first
    links = hrefs(Client().get("/sites/BNL/").content.decode())
    link = "/jobs/?computingsite=BNL&jobstatus=failed&piloterrorcode=1137&hours=12"
    assert link in links and jobs_total(link) == 6
    assert "/jobs/?computingsite=BNL&jobstatus=failed&exeerrorcode=65&hours=12" in links


def test_site_page_lists_recent_files_newest_first_with_links(grid):
    dataset = Dataset.objects.create(name="user.alice.output")
    files = [File.objects.create(lfn=f"out.{n}.root", guid=uuid.uuid4(), fsize=100 + n, adler32="00000001",
                                 origin_dataset=dataset) for n in range(55)]  # fmt: skip
    for item in files:
        FileReplica.objects.create(file=item, site=grid["BNL"], pfn=f"/storage/{item.lfn}")
    FileReplica.objects.create(file=files[0], site=grid["MWT2"], pfn="/elsewhere")
    data = get_json("/sites/BNL/")
    assert [row["file__lfn"] for row in data["recent_files"]] == [f"out.{n}.root" for n in range(54, 4, -1)]
    assert data["recent_files"][0]["dataset_url"].endswith("/user.alice.output/")
    page_links = hrefs(Client().get("/sites/BNL/").content.decode())
    assert data["recent_files"][0]["file_url"] in page_links
    assert any(link.startswith("/files/out.54.root") or "out.54.root" in link for link in page_links)


def test_site_page_worker_node_summary_links_to_the_nodes_page(grid):
    data = get_json("/sites/BNL/")
    nodes = {node["node"]: node for node in data["worker_nodes"]}
    assert nodes["wn9.bnl"]["failed"] == 6 and nodes["wn9.bnl"]["suspect"] is True
    assert nodes["wn1.bnl"]["finished"] == 3 and nodes["wn1.bnl"]["suspect"] is False
    assert "/wns/BNL/?hours=12" in hrefs(Client().get("/sites/BNL/").content.decode())


def test_site_page_unknown_site_and_bad_window():
    assert Client().get("/sites/NOWHERE/").status_code == 404
    SiteFactory(name="BNL")
    assert Client().get("/sites/BNL/", {"days": "abc"}).status_code == 400
    assert Client().get("/sites/BNL/", {"cloud": "USA"}).status_code == 400


# ---------------------------------------------------------------- worker nodes


def test_nodes_page_counts_equal_orm_counts_and_flag_black_holes(grid):
    data = get_json("/wns/BNL/")
    assert data["meta"]["window"]["hours"] == 24
    since = ago(hours=24)
    rows = {row["node"]: row for row in data["rows"]}
    for node, row in rows.items():
        jobs = Job.objects.filter(computing_site=grid["BNL"], modification_host=node, modification_time__gte=since)
        assert row["jobs"] == jobs.count()
        for status in ("finished", "failed", "cancelled", "closed"):
            assert row[status] == jobs.filter(status=status).count()
    assert rows["wn1.bnl"]["active"] == 1  # the running job
    assert rows["wn9.bnl"]["failure_pct"] == 100.0 and rows["wn9.bnl"]["suspect"]
    assert [row["node"] for row in data["rows"] if row["suspect"]] == ["wn9.bnl"]
    assert data["meta"]["site_failure_pct"] == round(100 * 8 / 11, 1)
    assert data["rows"][0]["node"] == "wn9.bnl"  # default: most failed first


def test_nodes_page_window_sorting_and_links(grid):
    rows = get_json("/wns/BNL/", days=2)["rows"]
    assert {row["node"]: row["jobs"] for row in rows}["wn9.bnl"] == 7  # the 30 h old failure
    assert [row["node"] for row in get_json("/wns/BNL/", sortby="node")["rows"]] == ["wn1.bnl", "wn2.bnl", "wn9.bnl"]
    assert get_json("/wns/BNL/", sortby="-finished")["rows"][0]["node"] == "wn1.bnl"
    link = "/jobs/?computingsite=BNL&modificationhost=wn9.bnl&jobstatus=failed&hours=24"
    assert link in hrefs(Client().get("/wns/BNL/").content.decode())
    assert jobs_total(link) == 6


@pytest.mark.parametrize(
    ("url", "params", "status"),
    [("/wns/BNL/", {"days": "abc"}, 400), ("/wns/BNL/", {"sortby": "colour"}, 400), ("/wns/BNL/", {"node": "x"}, 400),
     ("/wns/NOWHERE/", {}, 404)],
)  # fmt: skip
def test_nodes_page_refuses_bad_input(grid, url, params, status):
    response = Client().get(url, {**params, "json": ""})
    assert response.status_code == status and response.json()["error"]


# ---------------------------------------------------------------- empty database


@pytest.mark.parametrize("url", ["/sites/", "/users/", "/summary/usage/"])
def test_summary_pages_render_on_an_empty_database(url):
    response = Client().get(url)
    assert response.status_code == 200 and b"<h1>" in response.content
    assert Client().get(url, {"json": ""}).status_code == 200


def test_site_and_nodes_pages_render_for_a_site_without_jobs():
    SiteFactory(name="QUIET")
    for url in ("/sites/QUIET/", "/wns/QUIET/"):
        response = Client().get(url)
        assert response.status_code == 200
    data = get_json("/wns/QUIET/")
    assert data["rows"] == [] and data["meta"]["site_failure_pct"] is None
    assert get_json("/sites/QUIET/")["failures"] == []

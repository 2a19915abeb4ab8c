"""The errors summary page: tables counted over the whole selection, signatures, the time histogram."""

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from jobs.choices import JobStatus
from jobs.models import Job
from jobs.signatures import normalize

from ..factories import JobFactory, SiteFactory, UserFactory

pytestmark = pytest.mark.django_db


# ---------------------------------------------------------------- signatures


@pytest.mark.parametrize(
    ("diag", "signature"),
    [
        ("lost heartbeat: no pilot update for more than 613 s", "lost heartbeat: no pilot update for more than <N> s"),
        ("Non-zero return code from runGen (65)", "Non-zero return code from runGen (<N>)"),
        ("Failed to stage-out file /scratch/dir_1/HITS.root.1 to davs://se1.bnl.gov:443/atlas/x: timed out",
         "Failed to stage-out file <PATH> to <URL>: timed out"),
        ("guid 6f1c2a9e-1b2c-4d5e-8f90-0123456789ab missing", "guid <GUID> missing"),
        ("killed by 'alice': wrong input", "killed by <Q>: wrong input"),
        ('no such key "x-17"', "no such key <Q>"),
        ("pilot on wn123.cern.ch lost contact", "pilot on <HOST> lost contact"),
        ("connect to 10.2.3.4:8080 refused", "connect to <IP> refused"),
        ("checksum 0x1f2e3d mismatch, got 7f8e9d0c", "checksum <HEX> mismatch, got <HEX>"),
        ("adler32 of EVNT.12345._000002.pool.root.1", "adler32 of EVNT.<N>._<N>.pool.root.<N>"),
        ("exit -1 after 2.5 h", "exit <N> after <N> h"),
        ("  spaces   collapse\tto one  ", "spaces collapse to one"),
        ("General pilot error, consult batch log", "General pilot error, consult batch log"),
        ("", ""),
    ],
)  # fmt: skip
def test_signatures_replace_the_variable_parts_of_a_diagnostic(diag, signature):
    assert normalize(diag) == signature


def test_diagnostics_that_differ_only_in_details_share_a_signature():
    a = normalize(
        "Failed to stage-in file EVNT.1._000001.root from root://eos1.cern.ch//x/1: adler32 mismatch 0a1b2c3d"
    )
    b = normalize(
        "Failed to stage-in file EVNT.2._000777.root from root://eos7.cern.ch//y/2: adler32 mismatch ffee0011"
    )
    assert a == b
    assert normalize("stage-in failed") != normalize("stage-out failed")


# ---------------------------------------------------------------- the page


def _failed(site, owner, *, minutes_ago=30, task=None, **errors):
    moment = timezone.now() - timedelta(minutes=minutes_ago)
    return JobFactory(status=JobStatus.FAILED, computing_site=site, owner=owner, task_id=task,
                      creation_time=moment - timedelta(hours=1), start_time=moment - timedelta(minutes=40),
                      end_time=moment, modification_time=moment, state_change_time=moment, **errors)  # fmt: skip


@pytest.fixture
def failures():
    bnl, cern = SiteFactory(name="BNL"), SiteFactory(name="CERN")
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    for n in range(3):
        _failed(bnl, alice, task=11, pilot_error_code=1137,
                pilot_error_diag=f"Failed to stage-out file /scratch/dir_{n}/out.root to davs://se{n}.bnl.gov/x")  # fmt: skip
    _failed(
        bnl, bob, task=12, minutes_ago=200, exe_error_code=65, exe_error_diag="Non-zero return code from runGen (65)"
    )
    _failed(
        cern, bob, task=12, minutes_ago=400, exe_error_code=65, exe_error_diag="Non-zero return code from runGen (8)"
    )
    # Two components at once: counted under both codes, in one histogram series (the first: pilot).
    _failed(cern, alice, task=11, pilot_error_code=1099, pilot_error_diag="stage-in failed",
            ddm_error_code=200, ddm_error_diag="adder: output file missing")  # fmt: skip
    _failed(None, bob, brokerage_error_code=100, brokerage_error_diag="no site satisfies the job's requirements")
    _failed(bnl, alice, task=11, minutes_ago=60 * 20, pilot_error_code=1008)  # outside the default 12 h window
    for site in (bnl, bnl, cern):
        JobFactory(status=JobStatus.FINISHED, computing_site=site, owner=alice)
    JobFactory(status=JobStatus.HOLDING, computing_site=bnl, owner=alice)  # no error: not a failure
    JobFactory(status=JobStatus.HOLDING, computing_site=bnl, owner=alice, ddm_error_code=200, ddm_error_diag="x")
    return bnl, cern


def _window_failed():
    return Job.objects.filter(status=JobStatus.FAILED, modification_time__gte=timezone.now() - timedelta(hours=12))


def test_error_tables_equal_direct_counts(failures):
    data = Client().get("/errors/", {"json": ""}).json()
    failed = _window_failed()
    assert data["meta"]["total"] == failed.count() == 7
    assert data["meta"]["filters"] == {} and data["meta"]["defaults"] == {"jobstatus": "failed"}
    by_code = {(row["component"], row["code"]): row["count"] for row in data["by_code"]}
    assert by_code == {
        ("pilot", 1137): failed.filter(pilot_error_code=1137).count(),
        ("exe", 65): failed.filter(exe_error_code=65).count(),
        ("pilot", 1099): 1,
        ("ddm", 200): failed.filter(ddm_error_code=200).count(),
        ("brokerage", 100): 1,
    }
    assert by_code[("pilot", 1137)] == 3 and by_code[("exe", 65)] == 2
    stage_out = next(row for row in data["by_code"] if row["code"] == 1137)
    assert stage_out["meaning"] == "stage-out failed" and stage_out["sample_diag"].startswith("Failed to stage-out")
    sites = {row["site"]: row for row in data["by_site"]}
    assert {name: row["failed"] for name, row in sites.items()} == {"BNL": 4, "CERN": 2, "Not specified": 1}
    assert sites["BNL"]["finished"] == 2 and sites["CERN"]["finished"] == 1
    assert sites["BNL"]["pct_failed"] == round(100 * 4 / 6, 1)
    assert {row["user"]: row["failed"] for row in data["by_user"]} == {
        name: failed.filter(prod_user_name=name).count() for name in ("alice", "bob")
    }
    assert {row["task"]: row["failed"] for row in data["by_task"]} == {11: 4, 12: 2, "Not specified": 1}


def test_identical_failures_are_grouped_by_signature(failures):
    signatures = Client().get("/errors/", {"json": ""}).json()["signatures"]
    stage_out = next(s for s in signatures if s["code"] == 1137)
    assert stage_out["signature"] == "Failed to stage-out file <PATH> to <URL>"
    assert stage_out["count"] == 3 and stage_out["distinct_diags"] == 3
    assert sorted(stage_out["example_pandaids"]) == sorted(
        _window_failed().filter(pilot_error_code=1137).values_list("pandaid", flat=True)
    )
    run_gen = next(s for s in signatures if s["component"] == "exe")
    assert (run_gen["signature"], run_gen["count"], run_gen["distinct_diags"]) == (
        "Non-zero return code from runGen (<N>)", 2, 2)  # fmt: skip
    assert sum(s["count"] for s in signatures) == 8  # 7 jobs, one of them with two components


def test_histogram_bins_add_up_to_the_selection(failures):
    data = Client().get("/errors/", {"json": ""}).json()
    histogram = data["histogram"]
    assert data["meta"]["bins"]["unit"] == "10min" and len(histogram["bins"]) in (72, 73)
    assert sum(sum(series["counts"]) for series in histogram["series"]) == _window_failed().count()
    series = {s["name"]: sum(s["counts"]) for s in histogram["series"]}
    assert series == {"pilot:1137": 3, "exe:65": 2, "pilot:1099": 1, "brokerage:100": 1}
    wide = Client().get("/errors/", {"json": "", "days": "2"}).json()
    assert wide["meta"]["bins"]["unit"] == "hour" and wide["meta"]["total"] == 8
    assert sum(sum(s["counts"]) for s in wide["histogram"]["series"]) == 8


def test_holding_jobs_count_only_with_an_error(failures):
    data = Client().get("/errors/", {"json": "", "jobstatus": "failed|holding"}).json()
    assert data["meta"]["total"] == 8 and data["meta"]["filters"] == {"jobstatus": "failed|holding"}
    assert data["meta"]["defaults"] == {}
    assert {f["value"]: f["count"] for f in data["facets"]["jobstatus"]} == {"failed": 7, "holding": 1}


def test_filters_narrow_every_table_and_links_select_the_same_jobs(failures):
    client = Client()
    data = client.get("/errors/", {"json": "", "computingsite": "BNL"}).json()
    assert data["meta"]["total"] == 4 and [row["site"] for row in data["by_site"]] == ["BNL"]
    stage_out = next(row for row in data["by_code"] if row["code"] == 1137)
    query = parse_qs(urlsplit(stage_out["jobs_url"]).query)
    assert query == {"computingsite": ["BNL"], "jobstatus": ["failed"], "piloterrorcode": ["1137"]}
    jobs = client.get(stage_out["jobs_url"] + "&json").json()
    assert jobs["meta"]["total"] == stage_out["count"]


def test_a_deep_query_spans_its_jobs_times(failures):
    data = Client().get("/errors/", {"json": "", "taskid": "11"}).json()
    assert data["meta"]["window"]["from"] is None
    assert data["meta"]["total"] == 5  # the task's failure 20 h ago counts too: a task id lifts the window
    assert sum(sum(s["counts"]) for s in data["histogram"]["series"]) == 5


def test_page_renders_tables_help_and_the_plot(failures):
    html = Client().get("/errors/").content.decode()
    assert "<h1>Errors" in html and 'class="help"' in html
    assert "Failed to stage-out file &lt;PATH&gt; to &lt;URL&gt;" in html
    assert '<script src="/static/plotly/plotly.min.js">' in html
    assert 'id="figure-histogram" type="application/json"' in html
    assert "cdn" not in html.lower()


def test_empty_database():
    client = Client()
    assert client.get("/errors/").status_code == 200
    data = client.get("/errors/", {"json": ""}).json()
    assert data["meta"]["total"] == 0 and data["facets"] == {}
    assert data["by_code"] == data["by_site"] == data["by_user"] == data["by_task"] == data["signatures"] == []
    assert all(sum(s["counts"]) == 0 for s in data["histogram"]["series"])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"hours": "x"}, "hours must be a number"),
        ({"jobstatus": "bogus"}, "invalid filter: jobstatus"),
        ({"piloterrorcode": "abc"}, "piloterrorcode"),
        ({"nosuchparam": "1"}, "unknown parameter nosuchparam"),
        ({"date_from": "2024-13-45"}, "date_from must be a date"),
    ],
)
def test_bad_parameters_get_a_400(params, message):
    response = Client().get("/errors/", {**params, "json": ""})
    assert response.status_code == 400 and message in response.json()["error"]
    assert Client().get("/errors/", params).status_code == 400

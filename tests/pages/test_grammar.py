"""The filter grammar, attribute summary and keyset pages every list shares, exercised on the job list."""

from datetime import timedelta

import pytest
from django.db.models import Count
from django.test import Client
from django.utils import timezone

from jobs.choices import JobStatus
from jobs.models import Job
from pandamon import listing

from ..factories import JobFactory, SiteFactory

pytestmark = pytest.mark.django_db


def ids(params):
    response = Client().get("/jobs/", {**params, "json": "", "limit": 1000})
    assert response.status_code == 200, response.content
    return {row["pandaid"] for row in response.json()["rows"]}


@pytest.fixture
def jobs():
    bnl, cern, lyon = SiteFactory(name="BNL_ATLAS_1"), SiteFactory(name="CERN-PROD"), SiteFactory(name="IN2P3-LYON")
    now = timezone.now()
    made = {
        "bnl_running": JobFactory(computing_site=bnl, status=JobStatus.RUNNING, prod_source_label="user",
                                  current_priority=1000, task_id=7, processing_type="simul"),
        "bnl_failed": JobFactory(computing_site=bnl, status=JobStatus.FAILED, prod_source_label="managed",
                                 current_priority=900, task_id=7, processing_type="reco"),
        "cern_finished": JobFactory(computing_site=cern, status=JobStatus.FINISHED, prod_source_label="managed",
                                    current_priority=1100, task_id=8),
        "lyon_activated": JobFactory(computing_site=lyon, status=JobStatus.ACTIVATED, prod_source_label="ptest",
                                     current_priority=950),
        "unbrokered": JobFactory(status=JobStatus.DEFINED, prod_source_label="user", current_priority=1000),
        "old_failed": JobFactory(computing_site=bnl, status=JobStatus.FAILED, task_id=9,
                                 modification_time=now - timedelta(hours=30),
                                 state_change_time=now - timedelta(hours=30)),
    }  # fmt: skip
    return {name: job.pk for name, job in made.items()}


def test_equals_wildcards_or_and_not(jobs):
    assert ids({"jobstatus": "failed"}) == {jobs["bnl_failed"]}
    assert ids({"computingsite": "BNL*"}) == {jobs["bnl_running"], jobs["bnl_failed"]}
    assert ids({"computingsite": "*-PROD"}) == {jobs["cern_finished"]}
    assert ids({"computingsite": "*N2P3*"}) == {jobs["lyon_activated"]}
    assert ids({"computingsite": "CERN-PROD|IN2P3*"}) == {jobs["cern_finished"], jobs["lyon_activated"]}
    assert ids({"jobstatus": "!failed|!running"}) == {jobs["cern_finished"], jobs["lyon_activated"], jobs["unbrokered"]}
    assert ids({"prodsourcelabel": "managed", "computingsite": "!CERN*"}) == {jobs["bnl_failed"]}


def test_choice_wildcards_expand_over_the_states(jobs):
    assert ids({"jobstatus": "*ing"}) == {jobs["bnl_running"]}
    assert ids({"jobstatus": "*ed"}) == {jobs["bnl_failed"], jobs["cern_finished"], jobs["lyon_activated"],
                                         jobs["unbrokered"]}  # fmt: skip


def test_not_specified_matches_empty_values(jobs):
    assert ids({"computingsite": "Not specified"}) == {jobs["unbrokered"]}
    assert ids({"processingtype": "Not specified", "computingsite": "BNL*"}) == set()
    assert ids({"processingtype": "!Not specified"}) == {jobs["bnl_running"], jobs["bnl_failed"]}


def test_integer_values_and_ranges(jobs):
    assert ids({"priority": "950:1000"}) == {jobs["bnl_running"], jobs["lyon_activated"], jobs["unbrokered"]}
    assert ids({"taskid": "7|8"}) == {jobs["bnl_running"], jobs["bnl_failed"], jobs["cern_finished"]}
    assert ids({"taskid": "!7", "priority": "!950"}) == {jobs["cern_finished"], jobs["unbrokered"]}
    assert ids({"taskid": "Not specified"}) == {jobs["lyon_activated"], jobs["unbrokered"]}


def test_job_type_shortcut(jobs):
    assert ids({"jobtype": "production"}) == {jobs["bnl_failed"], jobs["cern_finished"]}
    assert ids({"jobtype": "analysis"}) == {jobs["bnl_running"], jobs["unbrokered"]}
    assert ids({"jobtype": "test"}) == {jobs["lyon_activated"]}


def test_time_window_defaults_to_12_hours_and_ids_lift_it(jobs):
    assert jobs["old_failed"] not in ids({})
    assert jobs["old_failed"] in ids({"hours": "48"})
    assert jobs["old_failed"] in ids({"days": "2"})
    assert jobs["old_failed"] not in ids({"hours": "6.5"})
    assert ids({"taskid": "9"}) == {jobs["old_failed"]}, "a task id is a deep query: no default window"
    assert ids({"pandaid": str(jobs["old_failed"])}) == {jobs["old_failed"]}
    assert jobs["old_failed"] not in ids({"taskid": "!7"}), "a negated id is not a deep query"

    def minute(hours_ago):
        return (timezone.now() - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M")

    assert ids({"date_from": minute(31), "date_to": minute(29)}) == {jobs["old_failed"]}
    assert jobs["old_failed"] in ids({"date_from": (timezone.now() - timedelta(days=2)).date().isoformat()})


def test_stalled_in_state(jobs):
    Job.objects.filter(pk=jobs["lyon_activated"]).update(state_change_time=timezone.now() - timedelta(hours=5))
    assert ids({"jobstatus": "activated", "statenotupdated": "4"}) == {jobs["lyon_activated"]}
    assert ids({"jobstatus": "activated", "statenotupdated": "6"}) == set()
    assert ids({"jobstatus": "failed", "statenotupdated": "24"}) == {jobs["old_failed"]}


@pytest.mark.parametrize(
    "params, message",
    [
        ({"jobstatus": "runing"}, "jobstatus: 'runing' is not one of"),
        ({"jobstatu": "running"}, "unknown parameter jobstatu"),
        ({"taskid": "seven"}, "taskid: 'seven' is not an integer"),
        ({"priority": "1:x"}, "priority: '1:x' is not an integer"),
        ({"computingsite": "BNL|"}, "computingsite: empty term"),
        ({"computingsite": "BNL'; drop table"}, "is not a valid pattern: use only letters"),
        ({"computingsite": "100%"}, "'100%' is not a valid pattern"),
        ({"jobstatus": "%"}, "'%' is not one of"),
        ({"a%": "1"}, "unknown parameter a%"),
        ({"hours": "x"}, "hours must be a number"),
        ({"hours": "0"}, "hours must be greater than 0"),
        ({"hours": "3", "days": "1"}, "give hours or days, not both"),
        ({"date_from": "yesterday"}, "date_from must be a date"),
        ({"date_from": "2026-05-02", "date_to": "2026-05-01"}, "date_to must be after date_from"),
        ({"sortby": "name"}, "sortby must be one of pandaid"),
        ({"limit": "0"}, "limit must be between 1 and 1000"),
        ({"limit": "many"}, "limit must be an integer"),
        ({"after": "not-a-cursor"}, "after is not a cursor"),
        ({"statenotupdated": "-3"}, "statenotupdated"),
    ],
)
def test_bad_values_get_a_400_that_names_the_problem(jobs, params, message):
    for accept_json in (True, False):
        query = {**params, "json": ""} if accept_json else params
        response = Client().get("/jobs/", query)
        assert response.status_code == 400
        text = response.json()["error"] if accept_json else response.content.decode()
        assert message in text.replace("&#x27;", "'")


def test_facets_equal_direct_counts_over_the_whole_selection(jobs):
    JobFactory.create_batch(130, status=JobStatus.FINISHED, prod_source_label="managed", cloud="US")
    data = Client().get("/jobs/", {"json": "", "prodsourcelabel": "managed", "limit": 5}).json()
    selection = Job.objects.filter(
        prod_source_label="managed", modification_time__gte=timezone.now() - timedelta(hours=12)
    )
    for name, lookup in [("jobstatus", "status"), ("cloud", "cloud"), ("taskid", "task_id")]:
        expected = {
            (value if value not in (None, "") else "Not specified"): n
            for value, n in selection.values_list(lookup).annotate(n=Count("pk")).order_by()
        }
        assert {entry["value"]: entry["count"] for entry in data["facets"][name]} == expected
    assert data["meta"]["total"] == selection.count() == 132
    assert len(data["rows"]) == 5


def test_keyset_pages_walk_the_whole_selection_once_in_order(jobs):
    same_moment = timezone.now() - timedelta(minutes=5)
    JobFactory.create_batch(7, modification_time=same_moment)  # ties on the sort key
    expected = list(
        Job.objects.filter(modification_time__gte=timezone.now() - timedelta(hours=12))
        .order_by("modification_time", "pandaid")
        .values_list("pandaid", flat=True)
    )
    seen, url = [], "/jobs/?sortby=modificationtime&limit=3&json"
    while url:
        data = Client().get(url).json()
        seen += [row["pandaid"] for row in data["rows"]]
        url = "/jobs/" + data["meta"]["next"] + "&json" if data["meta"]["next"] else None
    assert seen == expected


def test_total_says_more_than_when_counting_would_be_expensive(jobs, monkeypatch):
    monkeypatch.setattr(listing, "COUNT_CAP", 3)
    monkeypatch.setattr(listing, "FACET_VALUES_SHOWN", 0)  # every facet truncated: no exact total from them
    meta = Client().get("/jobs/", {"json": ""}).json()["meta"]
    assert meta["total"] is None and meta["total_more_than"] == 3
    assert "more than 3" in Client().get("/jobs/").content.decode()


def test_html_shows_the_same_rows_facets_and_chips_as_the_json_twin(jobs):
    params = {"computingsite": "BNL*", "hours": "48"}
    data = Client().get("/jobs/", {**params, "json": ""}).json()
    html = Client().get("/jobs/", params).content.decode()
    for row in data["rows"]:
        assert f'href="/jobs/{row["pandaid"]}/"' in html
    assert f'<b class="total">{data["meta"]["total"]}</b>' in html
    for name, entries in data["facets"].items():
        for entry in entries:
            assert f"{entry['value']} <small>{entry['count']}</small>" in html, (name, entry)
    assert "computingsite=BNL* ✕" in html
    assert data["meta"]["filters"] == {"computingsite": "BNL*"}
    assert data["meta"]["window"]["hours"] == 48


def test_the_api_takes_the_same_grammar(jobs):
    from rest_framework.test import APIClient

    listing_ = APIClient().get("/api/v1/jobs/", {"computingsite": "BNL*", "jobstatus": "!failed"}).json()
    assert [row["pandaid"] for row in listing_["results"]] == [jobs["bnl_running"]]


def test_a_bare_date_to_includes_that_whole_day(jobs):
    today = timezone.now().date().isoformat()
    assert ids({"date_from": today, "date_to": today}) >= {jobs["bnl_running"], jobs["unbrokered"]}


@pytest.mark.parametrize("params", [{"jobstatus": "%"}, {"a%s": "1"}, {"computingsite": "%(x)s"}])
def test_the_api_refuses_values_with_percent_signs_cleanly(params):
    from rest_framework.test import APIClient

    response = APIClient().get("/api/v1/jobs/", params)
    assert response.status_code == 400 and response.json()["error"].startswith("invalid input:")


def test_facets_are_the_same_counted_together_or_one_by_one(jobs, monkeypatch):
    JobFactory.create_batch(12, status=JobStatus.FINISHED, prod_source_label="managed", cloud="US")
    together = Client().get("/jobs/", {"json": "", "hours": "48"}).json()["facets"]
    monkeypatch.setattr(listing, "COMBINED_FACET_ROWS", 1)  # too many combinations: one GROUP BY per facet
    one_by_one = Client().get("/jobs/", {"json": "", "hours": "48"}).json()["facets"]
    assert together == one_by_one
    assert {f["value"]: f["count"] for f in together["jobstatus"]}["finished"] == 13

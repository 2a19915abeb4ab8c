"""The plots page: wait and duration distributions, jobs over time, plotly.js from our static files."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from jobs.choices import JobStatus
from jobs.models import Job
from pandamon.plots import TimeBins

from ..factories import JobFactory, SiteFactory

pytestmark = pytest.mark.django_db


def _job(site, status, *, label="managed", wait_min, run_min, ended_min_ago=30):
    end = timezone.now() - timedelta(minutes=ended_min_ago)
    start = end - timedelta(minutes=run_min)
    finished = status in (JobStatus.FINISHED, JobStatus.FAILED)
    return JobFactory(status=status, computing_site=site, prod_source_label=label,
                      creation_time=start - timedelta(minutes=wait_min), start_time=start,
                      end_time=end if finished else None, modification_time=end, state_change_time=end)  # fmt: skip


@pytest.fixture
def timed_jobs():
    bnl, cern = SiteFactory(name="BNL"), SiteFactory(name="CERN")
    _job(bnl, JobStatus.FINISHED, wait_min=0.5, run_min=30)  # wait 0-1 min, duration 30 min-1 h
    _job(bnl, JobStatus.FINISHED, wait_min=3, run_min=90, label="user")  # 2-5 min, 1-2 h
    _job(cern, JobStatus.FINISHED, wait_min=3, run_min=90, label="panda")  # 2-5 min, 1-2 h
    _job(cern, JobStatus.FINISHED, wait_min=100, run_min=60 * 30, label="test")  # 1-2 h, 1-2 d
    _job(cern, JobStatus.FAILED, wait_min=15, run_min=5)  # not in the default (finished) distributions
    _job(bnl, JobStatus.RUNNING, wait_min=7, run_min=10, ended_min_ago=0)  # started, not ended
    JobFactory(status=JobStatus.ACTIVATED, computing_site=bnl)  # created only
    _job(bnl, JobStatus.FINISHED, wait_min=3, run_min=60, ended_min_ago=60 * 30)  # outside the 12 h window
    return bnl, cern


def _bucket_counts(distribution, split, name):
    entry = next(item for item in distribution[split] if item[split.removeprefix("by_")] == name)
    return dict(zip(distribution["buckets"], entry["counts"], strict=True))


def test_wait_and_duration_distributions_equal_direct_counts(timed_jobs):
    data = Client().get("/plots/", {"json": ""}).json()
    assert data["meta"]["timing_jobstatus"] == "finished"
    wait, duration = data["wait"], data["duration"]
    finished = Job.objects.filter(
        status=JobStatus.FINISHED, modification_time__gte=timezone.now() - timedelta(hours=12)
    )
    assert wait["total"] == duration["total"] == finished.count() == 4
    for distribution in (wait, duration):
        for split in ("by_site", "by_type"):
            assert sum(sum(item["counts"]) for item in distribution[split]) == distribution["total"]
    assert {k: v for k, v in _bucket_counts(wait, "by_site", "BNL").items() if v} == {"0–1 min": 1, "2–5 min": 1}
    assert {k: v for k, v in _bucket_counts(wait, "by_site", "CERN").items() if v} == {"2–5 min": 1, "1–2 h": 1}
    assert {k: v for k, v in _bucket_counts(duration, "by_site", "CERN").items() if v} == {"1–2 h": 1, "1–2 d": 1}
    types = {item["type"]: sum(item["counts"]) for item in duration["by_type"]}
    assert types == {"production": 1, "analysis": 2, "test": 1}  # user and panda are analysis


def test_jobstatus_chooses_the_timed_jobs(timed_jobs):
    data = Client().get("/plots/", {"json": "", "jobstatus": "failed|running"}).json()
    assert data["wait"]["total"] == 2  # both have started
    assert data["duration"]["total"] == 1  # only the failed one has ended
    assert data["meta"]["filters"] == {"jobstatus": "failed|running"}


def test_jobs_over_time_equal_direct_counts(timed_jobs):
    data = Client().get("/plots/", {"json": ""}).json()["jobs_over_time"]
    start = timezone.now() - timedelta(hours=12)
    window = Job.objects.filter(modification_time__gte=start)
    assert data["totals"] == {
        "created": window.filter(creation_time__gte=start).count(),
        "started": window.filter(start_time__gte=start).count(),
        "finished": window.filter(status=JobStatus.FINISHED, end_time__gte=start).count(),
        "failed": window.filter(status=JobStatus.FAILED, end_time__gte=start).count(),
    }
    assert data["totals"]["created"] == 6 and data["totals"]["failed"] == 1
    for series in data["series"]:
        assert len(series["counts"]) == len(data["bins"])


def test_filters_apply_to_every_plot(timed_jobs):
    data = Client().get("/plots/", {"json": "", "computingsite": "CERN"}).json()
    assert data["wait"]["total"] == 2
    assert [item["site"] for item in data["wait"]["by_site"]] == ["CERN"]
    assert data["jobs_over_time"]["totals"]["failed"] == 1


def test_page_draws_the_plots_from_our_static_plotly(timed_jobs):
    html = Client().get("/plots/").content.decode()
    assert "<h1>Plots" in html and 'class="help"' in html
    assert '<script src="/static/plotly/plotly.min.js">' in html
    for figure in ("over-time", "wait-site", "wait-type", "duration-site", "duration-type"):
        assert f'id="figure-{figure}" type="application/json"' in html
    assert "cdn" not in html.lower() and 'href="/transfers/channels/"' in html  # transfer throughput is plotted there


def test_plotly_js_is_served_from_static_files():
    response = Client().get("/static/plotly/plotly.min.js")
    assert response.status_code == 200
    assert "javascript" in response["Content-Type"]
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert b"plotly.js v" in body[:200] and len(body) > 1_000_000


def test_empty_database():
    client = Client()
    assert client.get("/plots/").status_code == 200
    data = client.get("/plots/", {"json": ""}).json()
    assert data["wait"]["total"] == data["duration"]["total"] == 0
    assert data["wait"]["by_site"] == [] and data["jobs_over_time"]["series"] == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"days": "-1"}, "days must be greater than 0"),
        ({"jobstatus": "bogus"}, "invalid filter: jobstatus"),
        ({"jobtype": "nonsense"}, "jobtype"),
        ({"nosuchparam": "1"}, "unknown parameter nosuchparam"),
        ({"hours": "3", "days": "1"}, "not both"),
    ],
)
def test_bad_parameters_get_a_400(params, message):
    response = Client().get("/plots/", {**params, "json": ""})
    assert response.status_code == 400 and message in response.json()["error"]


# ---------------------------------------------------------------- time bins


@pytest.mark.parametrize(
    ("hours", "unit", "n_bins"),
    [(1, "10min", 7), (12, "10min", 73), (48, "hour", 49), (24 * 30, "day", 31), (24 * 365, "week", 53)],
)
def test_bins_are_sized_to_the_window(hours, unit, n_bins):
    end = datetime(2025, 3, 12, 10, 25, tzinfo=UTC)  # a Wednesday
    bins = TimeBins.for_span(end - timedelta(hours=hours), end)
    assert bins.unit == unit
    assert bins.start <= end - timedelta(hours=hours) < bins.start + bins.width
    assert bins.edges()[-1] < end <= bins.edges()[-1] + bins.width
    assert len(bins.edges()) in (n_bins, n_bins + 1)


def test_ten_minute_bins_are_computed_by_the_database():
    moment = timezone.now().replace(minute=37, second=12)
    JobFactory(modification_time=moment)
    bins = TimeBins.for_span(moment - timedelta(hours=1), moment + timedelta(minutes=1))
    (row,) = Job.objects.values(**bins.expressions("modification_time"))
    assert bins.key(row) == moment.replace(minute=30, second=0, microsecond=0)

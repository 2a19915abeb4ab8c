"""The generic plot: whitelisted models, time fields and group-by fields; counts per bin equal direct counts."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from jobs.choices import JobStatus

from ..factories import JobFactory, SiteFactory

pytestmark = pytest.mark.django_db


def plot(**params):
    response = Client().get("/plots/custom/", {**params, "json": ""})
    return response.status_code, response.json()


def test_jobs_per_bin_split_by_site_equal_direct_counts():
    bnl, cern = SiteFactory(name="BNL"), SiteFactory(name="CERN")
    now = timezone.now()
    for site, n in ((bnl, 3), (cern, 2)):
        JobFactory.create_batch(n, computing_site=site, status=JobStatus.FAILED, end_time=now - timedelta(hours=1))
    JobFactory(computing_site=bnl, status=JobStatus.FINISHED, end_time=now - timedelta(hours=1))
    JobFactory(computing_site=bnl, status=JobStatus.FAILED, end_time=now - timedelta(days=3))
    status, data = plot(model="jobs", time="end_time", by="computingsite", jobstatus="failed")
    assert status == 200
    totals = {series["name"]: sum(series["counts"]) for series in data["series"]}
    assert totals == {"BNL": 3, "CERN": 2}
    assert data["meta"]["filters"] == {"jobstatus": "failed"} and data["meta"]["bins"]["unit"] == "hour"


def test_other_models_and_no_split():
    JobFactory.create_batch(2)
    status, data = plot(model="jobs")
    assert status == 200 and [s["name"] for s in data["series"]] == ["jobs"]
    assert plot(model="alarms", by="severity")[0] == 200
    assert plot(model="datasets", time="created_at", by="category", days="7")[0] == 200


@pytest.mark.parametrize(
    "params, message",
    [
        ({"model": "auth_user"}, "model must be one of jobs, alarms, datasets"),
        ({"model": "jobs", "time": "pilot_error_diag"}, "time must be one of"),
        ({"model": "jobs", "by": "job_parameters"}, "by must be one of"),
        ({"model": "jobs", "jobstatu": "failed"}, "unknown parameter jobstatu"),
        ({"model": "jobs", "hours": "x"}, "hours must be a number"),
    ],
)
def test_only_whitelisted_choices_are_accepted(params, message):
    status, data = plot(**params)
    assert status == 400 and message in data["error"]


def test_the_page_draws_the_plot():
    JobFactory()
    html = Client().get("/plots/custom/", {"by": "jobstatus"}).content.decode()
    assert 'data-figure="custom-figure"' in html and "plotly.min.js" in html

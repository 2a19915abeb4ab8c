"""The home dashboard, the job page's actions and the search box."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from jobs.choices import JobStatus
from jobs.models import Job
from pandamon import roles
from sites.models import PilotActivity

from ..factories import JobFactory, SiteFactory, UserFactory, grant_role

pytestmark = pytest.mark.django_db


def home_site(data, name):
    return next(site for cloud in data["clouds"] for site in cloud["sites"] if site["name"] == name)


def test_dashboard_counts_live_jobs_of_any_age_and_final_jobs_in_the_window():
    bnl = SiteFactory(name="BNL")
    long_ago = timezone.now() - timedelta(days=3)
    JobFactory(computing_site=bnl, status=JobStatus.ACTIVATED, modification_time=long_ago)
    JobFactory(computing_site=bnl, status=JobStatus.FINISHED, modification_time=long_ago)
    JobFactory.create_batch(2, computing_site=bnl, status=JobStatus.FINISHED)
    JobFactory(status=JobStatus.DEFINED, cloud="US")
    data = Client().get("/", {"json": ""}).json()
    assert home_site(data, "BNL")["counts"] == {"activated": 1, "finished": 2}
    assert data["totals"] == {"activated": 1, "finished": 2, "defined": 1}
    assert any(cloud["name"] == "not brokered (US)" and cloud["counts"] == {"defined": 1} for cloud in data["clouds"])


def test_dashboard_flags_failing_sites_and_sites_without_pilots():
    bad, quiet, fine = SiteFactory(name="BAD"), SiteFactory(name="QUIET"), SiteFactory(name="FINE")
    JobFactory.create_batch(3, computing_site=bad, status=JobStatus.FAILED)
    JobFactory(computing_site=bad, status=JobStatus.FINISHED)
    JobFactory(computing_site=quiet, status=JobStatus.ACTIVATED)
    PilotActivity.objects.update_or_create(
        site=quiet, defaults={"last_contact_at": timezone.now() - timedelta(hours=3)}
    )
    JobFactory(computing_site=fine, status=JobStatus.ACTIVATED)
    PilotActivity.objects.update_or_create(site=fine, defaults={"last_contact_at": timezone.now()})
    data = Client().get("/", {"json": ""}).json()
    assert home_site(data, "BAD")["alarms"] == ["75% failed"]
    assert home_site(data, "QUIET")["alarms"] == ["no pilots"]
    assert home_site(data, "FINE")["alarms"] == []
    html = Client().get("/").content.decode()
    assert "⚠ 75% failed" in html and "alarm-row" in html


def test_dashboard_links_open_the_jobs_they_count():
    bnl = SiteFactory(name="BNL")
    JobFactory(computing_site=bnl, status=JobStatus.ACTIVATED, modification_time=timezone.now() - timedelta(days=3))
    JobFactory.create_batch(2, computing_site=bnl, status=JobStatus.FAILED)
    html = Client().get("/").content.decode()
    for state, count in (("activated", 1), ("failed", 2)):
        start = html.index(f"/jobs/?computingsite=BNL&jobstatus={state}")
        link = html[start : html.index('"', start)].replace("&amp;", "&")
        assert Client().get(link + "&json").json()["meta"]["total"] == count


@pytest.fixture
def failed_job():
    owner = UserFactory(username="alice")
    return JobFactory(owner=owner, status=JobStatus.FAILED, computing_site=SiteFactory(name="BNL"))


def test_job_page_offers_retry_only_to_those_allowed(failed_job):
    client = Client()
    assert "Retry" not in client.get(f"/jobs/{failed_job.pk}/").content.decode()
    client.force_login(UserFactory(username="mallory"))
    assert "Retry" not in client.get(f"/jobs/{failed_job.pk}/").content.decode()
    response = client.post(f"/jobs/{failed_job.pk}/retry/")
    assert response.status_code == 403 and b"you may not retry job" in response.content
    client.force_login(failed_job.owner)
    assert "Retry (new attempt)" in client.get(f"/jobs/{failed_job.pk}/").content.decode()
    response = client.post(f"/jobs/{failed_job.pk}/retry/")
    retry = Job.objects.get(parent_id=failed_job.pk)
    assert response.status_code == 302 and response["Location"] == f"/jobs/{retry.pk}/"
    assert client.post(f"/jobs/{failed_job.pk}/retry/").status_code == 409, "a job is retried once"


def test_kill_button_cancels_a_queued_job_for_a_shifter():
    job = JobFactory(status=JobStatus.ACTIVATED)
    client = Client()
    assert client.post(f"/jobs/{job.pk}/kill/").status_code == 403
    client.force_login(grant_role(UserFactory(username="shifty"), roles.SHIFTER))
    assert "Kill job" in client.get(f"/jobs/{job.pk}/").content.decode()
    assert client.post(f"/jobs/{job.pk}/kill/", {"reason": "stuck"}).status_code == 302
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and "killed by shifty: stuck" in job.task_buffer_error_diag
    assert client.get(f"/jobs/{job.pk}/kill/").status_code == 405


def test_kill_and_retry_forms_need_the_csrf_token(failed_job):
    client = Client(enforce_csrf_checks=True)
    client.force_login(failed_job.owner)
    assert client.post(f"/jobs/{failed_job.pk}/retry/").status_code == 403
    assert not Job.objects.filter(parent_id=failed_job.pk).exists()


def test_search_goes_straight_to_the_page_it_names(failed_job):
    client = Client()
    JobFactory(task_id=4242)
    cases = {
        str(failed_job.pk): f"/jobs/{failed_job.pk}/",
        "4242": "/tasks/4242/",
        "bnl": "/sites/BNL/",
    }
    for query, target in cases.items():
        response = client.get("/search/", {"q": f"  {query} "})
        assert response.status_code == 302 and response["Location"] == target, query
    assert client.get("/search/", {"q": "BNL", "json": ""}).json()["hit"] == {
        "kind": "site", "label": "BNL", "url": "/sites/BNL/"
    }  # fmt: skip


def test_search_says_what_it_tried_when_nothing_matches():
    response = Client().get("/search/", {"q": "no-such-thing"})
    assert response.status_code == 404 and "Nothing is named" in response.content.decode()
    assert Client().get("/search/", {"q": "999999", "json": ""}).json()["tried"][0] == "a job with this PandaID"
    assert Client().get("/search/", {"q": " "}).status_code == 400


def test_any_account_logs_in_to_the_portal_and_out_again():
    user = UserFactory(username="grace")
    user.set_password("pw-of-grace")
    user.save()
    client = Client()
    assert 'href="/login/?next=' in client.get("/").content.decode()
    response = client.post("/login/", {"username": "grace", "password": "pw-of-grace", "next": "/jobs/"})
    assert response.status_code == 302 and response["Location"] == "/jobs/"
    assert "grace" in client.get("/").content.decode()
    assert client.post("/login/", {"username": "grace", "password": "wrong"}).status_code == 200
    client.post("/logout/")
    assert 'href="/login/?next=' in client.get("/").content.decode()

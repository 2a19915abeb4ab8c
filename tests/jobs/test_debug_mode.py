"""Debug mode: set by the owner, a shifter or an admin; updateJob answers `command=debug` while it is
on and stores the payload stdout tail the pilot sends with its heartbeats."""

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs.choices import JobStatus
from jobs.models import Job, JobDebugOutput
from jobs.services import kill, peek, retry
from pandamon import roles
from pandamon.errors import Conflict, InvalidInput, PermissionDenied

from ..factories import JobFactory, UserFactory, grant_role

pytestmark = pytest.mark.django_db
JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def people(db):
    made = {name: UserFactory(username=name) for name in ("alice", "bob")}
    made["shifter"] = grant_role(UserFactory(username="shifty"), roles.SHIFTER)
    made["admin"] = UserFactory(username="root", is_staff=True)
    return made


@pytest.fixture
def running(people, site):
    return JobFactory(owner=people["alice"], computing_site=site, status=JobStatus.RUNNING)


def api_as(user=None):
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {Token.objects.get_or_create(user=user)[0].key}")
    return client


def heartbeat(job, token, state="running", **params):
    data = {"jobId": job.pk, "state": state, "siteName": job.computing_site.name, "node": "wn1", **params}
    response = Client().post("/server/panda/updateJob", data, HTTP_AUTHORIZATION=f"Bearer {token}", **JSON)
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.parametrize("who", ["alice", "shifter", "admin"])
def test_owner_shifter_and_admin_may_turn_it_on_and_off(people, running, who):
    assert peek.set_debug_mode(user=people[who], pandaid=running.pk, on=True).debug_mode is True
    assert Job.objects.get(pk=running.pk).debug_mode is True
    assert peek.set_debug_mode(user=people[who], pandaid=running.pk, on=False).debug_mode is False
    assert Job.objects.get(pk=running.pk).debug_mode is False


def test_others_may_not(people, running):
    with pytest.raises(PermissionDenied, match="may not set debug mode of job"):
        peek.set_debug_mode(user=people["bob"], pandaid=running.pk, on=True)
    assert Job.objects.get(pk=running.pk).debug_mode is False


def test_not_for_a_job_that_ended(people, site):
    job = JobFactory(owner=people["alice"], computing_site=site, status=JobStatus.FAILED)
    with pytest.raises(Conflict, match="is failed: it has no pilot to debug"):
        peek.set_debug_mode(user=people["alice"], pandaid=job.pk, on=True)
    with pytest.raises(InvalidInput):
        peek.set_debug_mode(user=people["alice"], pandaid=job.pk, on="yes")


def test_a_queued_job_may_start_in_debug_mode(people, site, pilot_token):
    job = JobFactory(owner=people["alice"], computing_site=site, status=JobStatus.SENT)
    peek.set_debug_mode(user=people["alice"], pandaid=job.pk, on=True)
    assert heartbeat(job, pilot_token, state="starting")["command"] == "debug"


def test_heartbeats_answer_debug_while_it_is_on_and_a_kill_wins(people, running, pilot_token):
    assert heartbeat(running, pilot_token)["command"] == "NULL"
    peek.set_debug_mode(user=people["alice"], pandaid=running.pk, on=True)
    assert heartbeat(running, pilot_token)["command"] == "debug"
    assert heartbeat(running, pilot_token)["command"] == "debug"  # repeated while on
    kill.kill_jobs(user=people["alice"], pandaids=[running.pk])
    assert heartbeat(running, pilot_token)["command"] == "tobekilled"


def test_turning_it_off_returns_to_null(people, running, pilot_token):
    peek.set_debug_mode(user=people["alice"], pandaid=running.pk, on=True)
    assert heartbeat(running, pilot_token)["command"] == "debug"
    peek.set_debug_mode(user=people["shifter"], pandaid=running.pk, on=False)
    assert heartbeat(running, pilot_token)["command"] == "NULL"


def test_the_stdout_tail_is_stored_and_shown(people, running, pilot_token):
    peek.set_debug_mode(user=people["alice"], pandaid=running.pk, on=True)
    heartbeat(running, pilot_token, stdout="event 1\nevent 2")
    heartbeat(running, pilot_token, stdout="event 2\nevent 3")  # only the latest tail is kept
    output = JobDebugOutput.objects.get(job=running)
    assert output.stdout == "event 2\nevent 3" and output.received_at
    assert api_as().get(f"/api/v1/jobs/{running.pk}/peek/").json()["debug_output"]["stdout"] == "event 2\nevent 3"
    page = Client().get(f"/jobs/{running.pk}/").content.decode()
    assert "Debug mode is on" in page and "event 2\nevent 3" in page
    assert Client().get(f"/jobs/{running.pk}/?json").json()["control"]["debug_output"]["stdout"] == "event 2\nevent 3"


def test_a_huge_stdout_keeps_its_end(people, running, pilot_token):
    heartbeat(running, pilot_token, stdout="y" * (peek.ANSWER_LIMIT + 100) + "LAST")
    stored = JobDebugOutput.objects.get(job=running).stdout
    assert len(stored) == peek.ANSWER_LIMIT and stored.endswith("LAST")


def test_api(people, running):
    response = api_as(people["alice"]).post(f"/api/v1/jobs/{running.pk}/debug/", {"on": True}, format="json")
    assert response.status_code == 200 and response.json() == {"pandaid": running.pk, "debug_mode": True}
    refused = api_as(people["bob"]).post(f"/api/v1/jobs/{running.pk}/debug/", {"on": False}, format="json")
    assert refused.status_code == 403 and "only its owner, a shifter or an admin" in refused.json()["error"]
    bad = api_as(people["alice"]).post(f"/api/v1/jobs/{running.pk}/debug/", {"on": "perhaps"}, format="json")
    assert bad.status_code == 400 and "on" in bad.json()["error"]
    assert api_as(people["alice"]).post(f"/api/v1/jobs/{running.pk}/debug/", {}, format="json").status_code == 400
    assert api_as().post(f"/api/v1/jobs/{running.pk}/debug/", {"on": True}, format="json").status_code in (401, 403)
    assert api_as(people["alice"]).post("/api/v1/jobs/99999999/debug/", {"on": True}, format="json").status_code == 404
    assert Job.objects.get(pk=running.pk).debug_mode is True


def test_page_button(people, running):
    owner, stranger = Client(), Client()
    owner.force_login(people["alice"])
    stranger.force_login(people["bob"])
    assert "Debug mode on" in owner.get(f"/jobs/{running.pk}/").content.decode()
    assert "Debug mode on" not in stranger.get(f"/jobs/{running.pk}/").content.decode()
    assert stranger.post(f"/jobs/{running.pk}/debug/", {"on": "1"}).status_code == 403
    assert owner.post(f"/jobs/{running.pk}/debug/", {"on": "maybe"}).status_code == 400
    assert Job.objects.get(pk=running.pk).debug_mode is False
    assert owner.post(f"/jobs/{running.pk}/debug/", {"on": "1"}).status_code == 302
    assert "Debug mode off" in owner.get(f"/jobs/{running.pk}/").content.decode()
    assert owner.post(f"/jobs/{running.pk}/debug/", {"on": "0"}).status_code == 302
    assert Job.objects.get(pk=running.pk).debug_mode is False


def test_a_retry_does_not_inherit_debug_mode(people, site):
    job = JobFactory(owner=people["alice"], computing_site=site, status=JobStatus.FAILED, debug_mode=True)
    new = retry.retry_for_user(user=people["alice"], pandaid=job.pk)
    assert new.debug_mode is False

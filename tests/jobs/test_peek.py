"""Peek: who may ask, the request's way to the pilot in the updateJob answer, the answer's way back."""

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs.choices import JobStatus
from jobs.models import PeekRequest
from jobs.services import peek
from pandamon import roles
from pandamon.errors import Conflict, InvalidInput, PermissionDenied

from ..factories import JobFactory, UserFactory, grant_role

pytestmark = pytest.mark.django_db
JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def people(db):
    made = {name: UserFactory(username=name) for name in ("alice", "bob")}
    made["shifter"] = grant_role(UserFactory(username="shifty"), roles.SHIFTER)
    made["prodmgr"] = grant_role(UserFactory(username="prodmgr"), roles.PRODUCTION_MANAGER)
    made["admin"] = UserFactory(username="root", is_staff=True, is_superuser=True)
    return made


@pytest.fixture
def running(people, site):
    return JobFactory(owner=people["alice"], computing_site=site, status=JobStatus.RUNNING)


def api_as(user=None):
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {Token.objects.get_or_create(user=user)[0].key}")
    return client


def heartbeat(job, token, **params):
    """One updateJob `running` from the job's pilot, as the JSON answer."""
    data = {"jobId": job.pk, "state": "running", "siteName": job.computing_site.name, "node": "wn1", **params}
    response = Client().post("/server/panda/updateJob", data, HTTP_AUTHORIZATION=f"Bearer {token}", **JSON)
    return response.status_code, response.json()


# -- asking ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["alice", "shifter", "admin"])
def test_owner_shifter_and_admin_may_peek(people, running, who):
    request = peek.request_peek(user=people[who], pandaid=running.pk, kind="tail")
    assert (request.state, request.kind, request.requested_by) == ("pending", "tail", people[who])


@pytest.mark.parametrize("who", ["bob", "prodmgr"])
def test_others_may_not(people, running, who):
    with pytest.raises(PermissionDenied, match="only its owner, a shifter or an admin"):
        peek.request_peek(user=people[who], pandaid=running.pk, kind="tail")
    assert not PeekRequest.objects.exists()


@pytest.mark.parametrize("status", [JobStatus.ACTIVATED, JobStatus.SENT, JobStatus.HOLDING, JobStatus.FINISHED])
def test_only_a_starting_or_running_job_can_be_peeked_at(people, site, status):
    job = JobFactory(owner=people["alice"], computing_site=site, status=status)
    with pytest.raises(Conflict, match=f"is {status}: only a starting or running job"):
        peek.request_peek(user=people["alice"], pandaid=job.pk, kind="ls")


def test_unknown_kind_is_refused(people, running):
    with pytest.raises(InvalidInput, match="kind must be one of tail, ls, ps"):
        peek.request_peek(user=people["alice"], pandaid=running.pk, kind="rm -rf /")


def test_one_pending_request_per_kind(people, running):
    peek.request_peek(user=people["alice"], pandaid=running.pk, kind="tail")
    with pytest.raises(Conflict, match="a tail request for job .* is already pending"):
        peek.request_peek(user=people["shifter"], pandaid=running.pk, kind="tail")
    peek.request_peek(user=people["alice"], pandaid=running.pk, kind="ps")  # another kind is fine
    assert PeekRequest.objects.filter(state="pending").count() == 2


def test_an_unanswered_request_expires_and_no_longer_blocks(people, running):
    old = peek.request_peek(user=people["alice"], pandaid=running.pk, kind="tail",
                            now=timezone.now() - peek.REQUEST_TTL - timedelta(minutes=1))  # fmt: skip
    new = peek.request_peek(user=people["alice"], pandaid=running.pk, kind="tail")
    old.refresh_from_db()
    assert old.state == "expired" and "no answer from the pilot" in old.answer
    assert new.state == "pending"


# -- the pilot's side ------------------------------------------------------------------------------


def test_heartbeat_answer_carries_the_requests_and_the_next_one_brings_the_answers(people, running, pilot_token):
    status, answer = heartbeat(running, pilot_token)
    assert answer == {"StatusCode": 0, "command": "NULL"}  # nothing asked: nothing extra
    tail = peek.request_peek(user=people["alice"], pandaid=running.pk, kind="tail")
    ls = peek.request_peek(user=people["alice"], pandaid=running.pk, kind="ls")

    status, answer = heartbeat(running, pilot_token)
    assert status == 200 and answer["command"] == "NULL"
    assert answer["peek"] == [{"id": tail.pk, "kind": "tail"}, {"id": ls.pk, "kind": "ls"}]
    assert answer["peekInterval"] == peek.POLL_INTERVAL_S

    answers = {str(tail.pk): "line 1\nline 2", str(ls.pk): "workdir listing"}
    status, answer = heartbeat(running, pilot_token, peekAnswers=json.dumps(answers))
    assert status == 200 and "peek" not in answer
    assert answer["peekInterval"] == peek.POLL_INTERVAL_S  # someone is looking: heartbeat often
    tail.refresh_from_db()
    assert (tail.state, tail.answer) == ("answered", "line 1\nline 2") and tail.answered_at

    # Visible in the API, the page and its JSON twin.
    rows = api_as().get(f"/api/v1/jobs/{running.pk}/peek/").json()["peeks"]
    assert {(row["kind"], row["state"], row["answer"]) for row in rows} == {
        ("tail", "answered", "line 1\nline 2"), ("ls", "answered", "workdir listing")}  # fmt: skip
    page = Client().get(f"/jobs/{running.pk}/")
    assert "line 1\nline 2" in page.content.decode() and "workdir listing" in page.content.decode()
    twin = Client().get(f"/jobs/{running.pk}/?json").json()
    assert {row["answer"] for row in twin["control"]["peeks"]} == {"line 1\nline 2", "workdir listing"}


def test_the_watch_window_ends(people, running, pilot_token):
    asked = timezone.now() - peek.WATCH_WINDOW - timedelta(seconds=5)
    request = peek.request_peek(user=people["alice"], pandaid=running.pk, kind="ps", now=asked)
    heartbeat(running, pilot_token, peekAnswers=json.dumps({str(request.pk): "ps output"}))
    _, answer = heartbeat(running, pilot_token)
    assert answer == {"StatusCode": 0, "command": "NULL"}


def test_answers_to_unknown_or_other_jobs_requests_are_ignored(people, running, site, pilot_token):
    other = JobFactory(owner=people["alice"], computing_site=site, status=JobStatus.RUNNING)
    theirs = peek.request_peek(user=people["alice"], pandaid=other.pk, kind="tail")
    status, _ = heartbeat(running, pilot_token, peekAnswers=json.dumps({str(theirs.pk): "forged", "999999": "x"}))
    assert status == 200
    theirs.refresh_from_db()
    assert (theirs.state, theirs.answer) == ("pending", "")


@pytest.mark.parametrize("raw", ["not json", "[1, 2]", '{"x": "text"}', '{"1": 5}',
                                 json.dumps({str(i): "t" for i in range(11)})])  # fmt: skip
def test_malformed_answers_are_refused_and_change_nothing(people, running, pilot_token, raw):
    request = peek.request_peek(user=people["alice"], pandaid=running.pk, kind="tail")
    before = running.modification_time
    status, answer = heartbeat(running, pilot_token, peekAnswers=raw)
    assert status == 400 and answer["StatusCode"] == 50 and "peekAnswers" in answer["errorDialog"]
    request.refresh_from_db()
    running.refresh_from_db()
    assert request.state == "pending" and running.modification_time == before


def test_a_long_answer_is_cut_to_its_end(people, running, pilot_token):
    request = peek.request_peek(user=people["alice"], pandaid=running.pk, kind="tail")
    text = "x" * (peek.ANSWER_LIMIT + 5000) + "THE END"
    heartbeat(running, pilot_token, peekAnswers=json.dumps({str(request.pk): text}))
    request.refresh_from_db()
    assert len(request.answer) == peek.ANSWER_LIMIT and request.answer.endswith("THE END")
    assert request.answer.startswith("[... cut")


def test_the_final_report_expires_pending_requests(people, running, pilot_token):
    request = peek.request_peek(user=people["alice"], pandaid=running.pk, kind="ps")
    response = Client().post("/server/panda/updateJob", {"jobId": running.pk, "state": "failed", "siteName": "BNL"},
                             HTTP_AUTHORIZATION=f"Bearer {pilot_token}", **JSON)  # fmt: skip
    assert response.status_code == 200
    request.refresh_from_db()
    assert request.state == "expired" and "the job ended (failed) before its pilot answered" in request.answer


def test_old_answers_are_pruned_per_kind(people, running, pilot_token):
    for n in range(peek.KEEP_PER_KIND + 2):
        request = peek.request_peek(user=people["alice"], pandaid=running.pk, kind="tail")
        heartbeat(running, pilot_token, peekAnswers=json.dumps({str(request.pk): f"answer {n}"}))
    kept = list(PeekRequest.objects.filter(job=running).values_list("answer", flat=True))
    assert kept == [f"answer {n}" for n in range(peek.KEEP_PER_KIND + 1, 1, -1)]


def test_expire_stale_cleans_up_requests_nobody_will_answer(people, running):
    request = peek.request_peek(user=people["alice"], pandaid=running.pk, kind="ls")
    running.status = JobStatus.FAILED
    running.save(update_fields=["status"])
    assert peek.expire_stale() == 1
    request.refresh_from_db()
    assert request.state == "expired"


def test_the_periodic_task_expires_them_and_records_its_run(people, running):
    from jobs.tasks import expire_peek_requests
    from pandamon.models import WorkerRun

    peek.request_peek(user=people["alice"], pandaid=running.pk, kind="ps")
    running.status = JobStatus.FAILED
    running.save(update_fields=["status"])
    expire_peek_requests()
    assert PeekRequest.objects.get(job=running).state == "expired"
    assert WorkerRun.objects.get(name="jobs.expire_peek_requests").counts == {"expired": 1}


def test_the_new_pilot_api_carries_requests_and_answers(people, running, pilot_token):
    """/api/v1/pilot/update_job: the same job control as updateJob, in snake_case JSON."""
    ls = peek.request_peek(user=people["alice"], pandaid=running.pk, kind="ls")
    client, auth = Client(), {"HTTP_AUTHORIZATION": f"Bearer {pilot_token}"}
    body = {"job_id": running.pk, "job_status": "running", "site_name": running.computing_site.name}
    data = client.post("/api/v1/pilot/update_job", body, content_type="application/json", **auth).json()["data"]
    assert data["peek"] == [{"id": ls.pk, "kind": "ls"}]
    body["peek_answers"] = {str(ls.pk): "a listing"}
    data = client.post("/api/v1/pilot/update_job", body, content_type="application/json", **auth).json()["data"]
    assert "peek" not in data
    ls.refresh_from_db()
    assert (ls.state, ls.answer) == ("answered", "a listing")


def test_a_pending_request_of_an_ended_job_reads_as_expired(people, running):
    peek.request_peek(user=people["alice"], pandaid=running.pk, kind="ls")
    running.status = JobStatus.FAILED  # e.g. the lost-heartbeat watcher failed it
    running.save(update_fields=["status"])
    [row] = api_as().get(f"/api/v1/jobs/{running.pk}/peek/").json()["peeks"]
    assert row["state"] == "expired"


# -- API and page ------------------------------------------------------------------------------------


def test_api_peek(people, running):
    response = api_as(people["shifter"]).post(f"/api/v1/jobs/{running.pk}/peek/", {"kind": "ps"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["kind"], body["state"], body["requested_by"]) == ("ps", "pending", "shifty")
    again = api_as(people["alice"]).post(f"/api/v1/jobs/{running.pk}/peek/", {"kind": "ps"}, format="json")
    assert again.status_code == 409 and "already pending" in again.json()["error"]


@pytest.mark.parametrize(("who", "body", "status", "message"), [
    ("bob", {"kind": "tail"}, 403, "only its owner, a shifter or an admin"),
    ("alice", {"kind": "cat /etc/passwd"}, 400, "kind"),
    ("alice", {}, 400, "kind"),
    (None, {"kind": "tail"}, 401, ""),
])  # fmt: skip
def test_api_refusals(people, running, who, body, status, message):
    response = api_as(people.get(who)).post(f"/api/v1/jobs/{running.pk}/peek/", body, format="json")
    assert response.status_code in ((401, 403) if status == 401 else (status,)), response.content
    if message:
        assert message in response.json()["error"]
    assert not PeekRequest.objects.exists()


def test_api_unknown_job_and_finished_job(people, site):
    done = JobFactory(owner=people["alice"], computing_site=site, status=JobStatus.FINISHED)
    client = api_as(people["alice"])
    assert client.post("/api/v1/jobs/99999999/peek/", {"kind": "tail"}, format="json").status_code == 404
    assert client.get("/api/v1/jobs/99999999/peek/").status_code == 404
    response = client.post(f"/api/v1/jobs/{done.pk}/peek/", {"kind": "tail"}, format="json")
    assert response.status_code == 409 and "only a starting or running job" in response.json()["error"]


def test_page_buttons_follow_the_permission_rule(people, running):
    owner, stranger = Client(), Client()
    owner.force_login(people["alice"])
    stranger.force_login(people["bob"])
    assert "Peek: tail" in owner.get(f"/jobs/{running.pk}/").content.decode()
    assert "Peek: tail" not in stranger.get(f"/jobs/{running.pk}/").content.decode()
    assert "Peek: tail" not in Client().get(f"/jobs/{running.pk}/").content.decode()

    assert owner.post(f"/jobs/{running.pk}/peek/", {"kind": "tail"}).status_code == 302
    refused = stranger.post(f"/jobs/{running.pk}/peek/", {"kind": "ls"})
    assert refused.status_code == 403
    assert list(PeekRequest.objects.values_list("kind", flat=True)) == ["tail"]
    page = owner.get(f"/jobs/{running.pk}/").content.decode()
    assert "pending" in page and 'http-equiv="refresh"' in page  # reloads until answered
    assert Client().post(f"/jobs/{running.pk}/peek/", {"kind": "ls"}).status_code == 403  # anonymous


def test_page_refuses_a_bad_kind_with_400(people, running):
    owner = Client()
    owner.force_login(people["alice"])
    assert owner.post(f"/jobs/{running.pk}/peek/", {"kind": "gdb"}).status_code == 400
    assert not PeekRequest.objects.exists()


def test_no_peek_buttons_once_the_job_ended(people, site):
    job = JobFactory(owner=people["alice"], computing_site=site, status=JobStatus.FINISHED)
    owner = Client()
    owner.force_login(people["alice"])
    assert "Peek: tail" not in owner.get(f"/jobs/{job.pk}/").content.decode()

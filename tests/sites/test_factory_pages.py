"""The scheduler status pages, what batch pilots download, and updateWorkerPilotStatus."""

import io
import tarfile
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.choices import JobStatus
from sites.factory import services
from sites.models import Pilot, PilotFactory, PilotJob, PilotState
from sites.services import create_pilot_credential

from ..factories import JobFactory, SiteFactory

pytestmark = pytest.mark.django_db
STATUS_URL = "/server/panda/updateWorkerPilotStatus"
JSON = {"HTTP_ACCEPT": "application/json"}


def factory_row(name, sites, *, last_cycle_ago=timedelta(seconds=10), stopped=False, period_s=60):
    now = timezone.now()
    row = PilotFactory.objects.create(name=name, host=f"{name}.example.org", pid=42, plugin="slurm", version="1.0",
                                      period_s=period_s, started_at=now - timedelta(hours=1),
                                      last_cycle_at=now - last_cycle_ago, cycles=7,
                                      stopped_at=now if stopped else None)  # fmt: skip
    row.sites.set(sites)
    return row


def pilot(factory, site, state=PilotState.SUBMITTED, **fields):
    made = services.new_pilot(factory=factory, site=site)
    Pilot.objects.filter(pk=made.pk).update(state=state, **fields)
    return Pilot.objects.get(pk=made.pk)


@pytest.fixture
def grid():
    bnl, uta = SiteFactory(name="BNL", max_running_jobs=50), SiteFactory(name="UTA", status="offline")
    JobFactory(status=JobStatus.ACTIVATED, computing_site=bnl)
    up = factory_row("up", [bnl, uta])
    silent = factory_row("quiet", [bnl], last_cycle_ago=timedelta(minutes=10))
    factory_row("old", [uta], stopped=True)
    pilot(up, bnl, batch_id="101")
    pilot(up, bnl, PilotState.RUNNING, batch_id="102")
    pilot(up, bnl, PilotState.LOST, batch_id="103", ended_at=timezone.now(),
          exit_reason="gone from the batch system before the pilot contacted the server")  # fmt: skip
    pilot(silent, bnl, PilotState.FAILED, ended_at=timezone.now(), exit_code=4, exit_reason="credential refused")
    pilot(silent, bnl, PilotState.FAILED, ended_at=timezone.now() - timedelta(days=3))  # outside the window
    PilotFactory.objects.filter(pk=up.pk).update(last_decisions={"BNL": {"submitted": 1, "wanted": 1,
                                                 "reason": "1 activated job, 0 queued pilots"}})  # fmt: skip
    return bnl, uta, up


def test_scheduler_page_lists_factories_sites_pilots_and_failures(client, grid):
    data = client.get("/scheduler/?json").json()
    status = {row["name"]: row["status"] for row in data["factories"]}
    assert status == {"old": "stopped", "quiet": "silent", "up": "operating"}
    quiet = next(row for row in data["factories"] if row["name"] == "quiet")
    assert quiet["silent_since"] and quiet["sites"] == ["BNL"]
    up = next(row for row in data["factories"] if row["name"] == "up")
    assert up["pilots"] == {"submitted": 1, "running": 1, "finished": 0, "failed": 0, "lost": 1}
    bnl = next(row for row in data["sites"] if row["site"] == "BNL")
    assert (bnl["activated_jobs"], sorted(bnl["factories"])) == (1, ["quiet", "up"])
    assert bnl["pilots"]["failed"] == 1  # the older failure is outside the 24 h window
    assert bnl["last_decisions"]["up"]["reason"] == "1 activated job, 0 queued pilots"
    failures = data["recent_failures"]
    assert sorted((failure["factory"], failure["state"], failure["exit_reason"]) for failure in failures) == [
        ("quiet", "failed", "credential refused"),
        ("up", "lost", "gone from the batch system before the pilot contacted the server"),
    ]
    html = client.get("/scheduler/").content.decode()
    for text in ("Scheduler status", '<span class="factory-silent">silent</span>', "quiet.example.org",
                 "credential refused", "Recent failures", "1 activated job, 0 queued pilots"):  # fmt: skip
        assert text in html
    assert 'href="/scheduler/"' in client.get("/sites/").content.decode()  # the navigation link


def test_scheduler_page_refuses_bad_parameters(client, db):
    assert client.get("/scheduler/?hours=abc").status_code == 400
    assert client.get("/scheduler/?hours=0&json").json()["error"].startswith("hours must be between")
    assert client.get("/scheduler/?factory=x").status_code == 400
    assert client.get("/scheduler/?hours=168&json").status_code == 200


def test_pilot_list_and_pilot_page(client, grid):
    bnl, _, up = grid
    rows = client.get("/scheduler/pilots/?factory=up&state=lost&json").json()["rows"]
    (lost,) = rows
    assert lost["batch_id"] == "103" and lost["url"] == f"/scheduler/pilots/{lost['id']}/"
    assert client.get("/scheduler/pilots/?state=zombie").status_code == 400
    assert client.get("/scheduler/pilots/?limit=5000").status_code == 400
    assert "103" in client.get("/scheduler/pilots/?site=BNL").content.decode()
    job = JobFactory(status=JobStatus.FINISHED, computing_site=bnl)
    PilotJob.objects.create(pilot_id=lost["id"], pandaid=job.pandaid, linked_at=timezone.now())
    page = client.get(f"/scheduler/pilots/{lost['id']}/?json").json()
    assert page["jobs"] == [{"pandaid": job.pandaid, "status": "finished", "url": f"/jobs/{job.pandaid}/"}]
    assert f"/jobs/{job.pandaid}/" in client.get(f"/scheduler/pilots/{lost['id']}/").content.decode()
    assert client.get("/scheduler/pilots/not-a-uuid/").status_code == 404
    assert client.get(f"/scheduler/pilots/{uuid.uuid4()}/?json").status_code == 404


def test_wrapper_and_pilot_tarball(client, db):
    wrapper = client.get("/pilot/wrapper.sh")
    assert wrapper.status_code == 200 and wrapper.content.startswith(b"#!/bin/sh\n")
    assert b"/pilot/pilot.tar.gz" in wrapper.content
    tarball = client.get("/pilot/pilot.tar.gz")
    names = tarfile.open(fileobj=io.BytesIO(tarball.content), mode="r:gz").getnames()
    assert {"pilot/__main__.py", "pilot/worker_status.py", "pilot/loop.py"} <= set(names)
    assert not any("__pycache__" in name for name in names)
    assert client.get("/pilot/pilot.tar.gz").content == tarball.content  # reproducible, cached
    assert client.get("/pilot/pilot.tar.gz", HTTP_IF_NONE_MATCH=tarball["ETag"]).status_code == 304
    assert client.post("/pilot/wrapper.sh").status_code == 405


# ---------------------------------------------------------------- updateWorkerPilotStatus


@pytest.fixture
def reporting():
    site = SiteFactory(name="BNL")
    _, token = create_pilot_credential(name="factory-bnl", sites=[site])
    row = factory_row("f1", [site])
    return site, row, {"HTTP_AUTHORIZATION": f"Bearer {token}", **JSON}


def report(client, headers, **form):
    return client.post(STATUS_URL, form, **headers)


def test_a_pilot_reports_its_start_and_end(client, reporting):
    site, row, headers = reporting
    made = pilot(row, site)
    answer = report(
        client, headers, workerID=str(made.pk), harvesterID="f1", status="started", site="BNL", node_id="wn1"
    )
    assert answer.json() == {"StatusCode": 0, "message": "running"}
    made.refresh_from_db()
    assert (made.state, made.node) == (PilotState.RUNNING, "wn1") and made.started_at and made.last_contact_at
    answer = report(client, headers, workerID=str(made.pk), status="finished", exitCode="0", jobsRun="3")
    made.refresh_from_db()
    assert (made.state, made.exit_code, made.jobs_run, made.exit_reason) == (PilotState.FINISHED, 0, 3, "normal end")
    # A late duplicate changes nothing.
    assert report(client, headers, workerID=str(made.pk), status="started").json()["message"].startswith("ignored")


def test_a_failing_exit_and_a_revived_lost_pilot(client, reporting):
    site, row, headers = reporting
    failing, revived = pilot(row, site, PilotState.RUNNING), pilot(row, site, PilotState.LOST, exit_reason="x")
    report(client, headers, workerID=str(failing.pk), status="finished", exitCode="4")
    failing.refresh_from_db()
    assert (failing.state, failing.exit_reason) == (PilotState.FAILED, "pilot credential refused by the server")
    assert (
        report(client, headers, workerID=str(revived.pk), status="started")
        .json()["message"]
        .startswith("running again")
    )
    revived.refresh_from_db()
    assert (revived.state, revived.exit_reason, revived.ended_at) == (PilotState.RUNNING, "", None)


def test_pilot3_style_form_encoded_answer(client, reporting):
    site, row, headers = reporting
    made = pilot(row, site)
    answer = client.post(STATUS_URL, {"workerID": str(made.pk), "harvesterID": "f1", "status": "started", "site": "BNL"},
                         HTTP_AUTHORIZATION=headers["HTTP_AUTHORIZATION"])  # fmt: skip
    assert answer.content.decode().startswith("StatusCode=0")


@pytest.mark.parametrize(
    ("form", "status_code", "message"),
    [
        ({"workerID": "12345", "status": "started"}, 400, "workerID must be a pilot id"),
        ({"workerID": "{pilot}", "status": "exploded"}, 400, "status must be one of started, running, finished"),
        ({"workerID": str(uuid.UUID(int=7)), "status": "started"}, 400, "unknown worker"),
        ({"workerID": "{pilot}", "status": "started", "site": "CERN"}, 400, "submitted to site BNL, not CERN"),
        ({"workerID": "{pilot}", "status": "started", "harvesterID": "f9"}, 400, "belongs to factory f1, not f9"),
        ({"workerID": "{pilot}", "status": "finished", "exitCode": "zero"}, 400, "exitCode must be a number"),
        ({"workerID": "{pilot}", "status": "finished", "exitCode": "99999999999"}, 400, "exitCode must be between"),
        ({"workerID": "{pilot}", "status": "finished", "jobsRun": "-3"}, 400, "jobsRun must be between 0"),
    ],
)
def test_bad_reports_are_refused_without_change(client, reporting, form, status_code, message):
    site, row, headers = reporting
    made = pilot(row, site)
    form = {name: value.format(pilot=made.pk) for name, value in form.items()}
    answer = report(client, headers, **form)
    assert answer.status_code == status_code and answer.json()["StatusCode"] == 50
    assert message in answer.json()["errorDialog"]
    assert Pilot.objects.get(pk=made.pk).state == PilotState.SUBMITTED


def test_reports_need_a_credential_for_the_pilots_site(client, reporting):
    site, row, headers = reporting
    made = pilot(row, site)
    answer = client.post(STATUS_URL, {"workerID": str(made.pk), "status": "started"}, **JSON)
    assert answer.status_code == 403 and answer.json()["StatusCode"] == 70
    other = SiteFactory(name="UTA")
    _, token = create_pilot_credential(name="uta-only", sites=[other])
    answer = client.post(STATUS_URL, {"workerID": str(made.pk), "status": "started"}, HTTP_AUTHORIZATION=f"Bearer {token}",
                         **JSON)  # fmt: skip
    assert answer.status_code == 403 and "not bound to site 'BNL'" in answer.json()["errorDialog"]
    assert Pilot.objects.get(pk=made.pk).state == PilotState.SUBMITTED
    assert client.get(STATUS_URL).status_code == 405

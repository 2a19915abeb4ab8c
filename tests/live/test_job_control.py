"""Job control with the real pilot against a live server: the looping-job killer, peeks, kill within
one heartbeat, and debug mode (docs/job-control.md)."""

import subprocess
import sys
import time

import pytest
import requests
from rest_framework.authtoken.models import Token

from jobs.models import Job, JobDebugOutput, PeekRequest, RetryRule
from sites.services import create_pilot_credential

from ..factories import SiteFactory, UserFactory
from .conftest import ROOT
from .test_end_to_end import job_status, submit, wait_for

pytestmark = pytest.mark.live
SITE = "JOBCTL"
# Prints a line every half second: its work directory changes, so it is never looping.
TICKER = '#!/bin/sh\ni=0\nwhile [ $i -lt 240 ]; do i=$((i+1)); echo "tick $i"; sleep 0.5; done\n'
SLEEPER = "#!/bin/sh\necho started\nsleep 120\n"


@pytest.fixture
def setup(live_server_url, celery_worker, tmp_path):
    """The site, a pilot credential file, and a user's API token."""
    site = SiteFactory(name=SITE)
    _, pilot_token = create_pilot_credential(name="jobctl", sites=[site])
    token_file = tmp_path / "pilot.token"
    token_file.write_text(pilot_token)
    user_token = Token.objects.create(user=UserFactory(username="erin")).key
    return live_server_url, token_file, user_token


def start_pilot(url, token_file, tmp_path, *options):
    argv = [sys.executable, "-m", "pilot", "--server", url, "--site", SITE, "--credential-file", str(token_file),
            "--max-jobs", "1", "--idle-sleep", "1", "--workdir", str(tmp_path / "wd"), "--kill-grace", "2",
            "--no-recovery", *options]  # fmt: skip
    log = open(tmp_path / "pilot.log", "wb")  # noqa: SIM115 - closed by stop_pilot
    return subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), log


def stop_pilot(pilot, log, timeout=60):
    """The pilot's exit code once it ended by itself; None if it had to be killed."""
    try:
        return pilot.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    finally:
        if pilot.poll() is None:
            pilot.kill()
            pilot.wait()
        log.close()


def pilot_log(tmp_path):
    return (tmp_path / "pilot.log").read_text(errors="replace")[-4000:]


def api(url, token, method, path, **kwargs):
    return requests.request(method, f"{url}/api/v1/jobs/{path}", headers={"Authorization": f"Bearer {token}"},
                            timeout=15, **kwargs)  # fmt: skip


def one_running_job(url, user_token, transformation, **extra):
    [pandaid] = submit(url, user_token, [{"job_name": "jobctl", "transformation": transformation,
                                          "computing_site": SITE, **extra}])  # fmt: skip
    wait_for(lambda: Job.objects.filter(pandaid=pandaid, status="activated").exists(), what="brokerage")
    return pandaid


def final_status(url, pandaid):
    status = job_status(url, pandaid)
    return status if status in {"finished", "failed", "cancelled", "closed"} else None


def test_a_payload_that_sleeps_is_killed_as_looping_and_not_retried(setup, tmp_path):
    url, token_file, user_token = setup
    # The seeded rule (jobs/0009); an earlier transactional test's flush may have removed it.
    RetryRule.objects.get_or_create(error_source="pilot", error_code=1150, action="no_retry", defaults={"position": 5})
    pandaid = one_running_job(url, user_token, SLEEPER)
    started = time.monotonic()
    pilot, log = start_pilot(url, token_file, tmp_path, "--heartbeat", "5", "--looping-timeout", "3")
    assert stop_pilot(pilot, log) == 0, pilot_log(tmp_path)
    assert time.monotonic() - started < 30  # not the payload's 120 s

    assert wait_for(lambda: final_status(url, pandaid), what="the Adder") == "failed", pilot_log(tmp_path)
    job = Job.objects.get(pandaid=pandaid)
    assert job.pilot_error_code == 1150
    assert job.pilot_error_diag.startswith("Looping job killed by pilot: no file in the work directory was changed")
    assert "(looping limit 3 s)" in job.pilot_error_diag
    assert not Job.objects.filter(parent_id=pandaid).exists()  # seeded rule: no automatic retry
    assert "no_retry" in job.status_log.get(new_status="failed").reason
    page = requests.get(f"{url}/jobs/{pandaid}/", timeout=15).text
    assert "looping job killed by the pilot" in page


def test_a_job_without_looping_check_is_left_alone(setup, tmp_path):
    url, token_file, user_token = setup
    pandaid = one_running_job(url, user_token, "#!/bin/sh\nsleep 6\n", special_handling="lc")
    pilot, log = start_pilot(url, token_file, tmp_path, "--heartbeat", "5", "--looping-timeout", "2")
    assert stop_pilot(pilot, log) == 0, pilot_log(tmp_path)
    assert wait_for(lambda: final_status(url, pandaid), what="the Adder") == "finished", pilot_log(tmp_path)


def test_peek_round_trip_then_kill_within_one_heartbeat(setup, tmp_path):
    url, token_file, user_token = setup
    heartbeat = 3
    pandaid = one_running_job(url, user_token, TICKER)
    pilot, log = start_pilot(url, token_file, tmp_path, "--heartbeat", str(heartbeat))
    try:
        wait_for(lambda: job_status(url, pandaid) == "running", what="the job to run")
        for kind in ("tail", "ls", "ps"):
            response = api(url, user_token, "post", f"{pandaid}/peek/", json={"kind": kind})
            assert response.status_code == 201, response.text
        asked = time.monotonic()

        def answered():
            rows = api(url, user_token, "get", f"{pandaid}/peek/").json()["peeks"]
            return {row["kind"]: row["answer"] for row in rows} if all(r["state"] == "answered" for r in rows) else None

        answers = wait_for(answered, timeout=30, what="the pilot's answers")
        assert time.monotonic() - asked < heartbeat + 3  # the next heartbeat brought them, answered at once
        assert "tick" in answers["tail"] and "==> payload.stdout <==" in answers["tail"]
        assert "payload.stdout" in answers["ls"] and "pilot_state.json" in answers["ls"]
        assert "sleep 0.5" in answers["ps"] and "PID" in answers["ps"]
        page = requests.get(f"{url}/jobs/{pandaid}/", timeout=15).text
        assert "Job control" in page and "payload.stdout" in page

        # Again: the pilot heartbeats every peekInterval (5 s) while someone looks; here the
        # heartbeat is shorter anyway, so the second answer also comes within one heartbeat.
        assert api(url, user_token, "post", f"{pandaid}/peek/", json={"kind": "tail"}).status_code == 201
        wait_for(lambda: not PeekRequest.objects.filter(job_id=pandaid, state="pending").exists(), timeout=30,
                 what="the second answer")  # fmt: skip

        killed = time.monotonic()
        response = api(url, user_token, "post", "kill/", json={"pandaids": [pandaid]})
        assert response.json()["results"] == {str(pandaid): "kill command sent to the pilot"}
        wait_for(lambda: job_status(url, pandaid) != "running", timeout=30, what="the pilot to obey")
        obeyed = time.monotonic() - killed
        # One heartbeat to hear it, the payload dies at SIGTERM, then the final update (margin 3 s).
        assert obeyed < heartbeat + 3, f"kill took {obeyed:.1f} s"
    finally:
        exit_code = stop_pilot(pilot, log)
    assert exit_code == 0, pilot_log(tmp_path)
    assert wait_for(lambda: final_status(url, pandaid), what="the Adder") == "cancelled"
    assert Job.objects.get(pandaid=pandaid).pilot_error_code == 1144


def test_debug_mode_brings_the_stdout_tail_and_off_stops_it(setup, tmp_path):
    url, token_file, user_token = setup
    pandaid = one_running_job(url, user_token, TICKER)
    pilot, log = start_pilot(url, token_file, tmp_path, "--heartbeat", "6", "--debug-heartbeat", "1")
    try:
        wait_for(lambda: job_status(url, pandaid) == "running", what="the job to run")
        response = api(url, user_token, "post", f"{pandaid}/debug/", json={"on": True})
        assert response.status_code == 200 and response.json()["debug_mode"] is True

        def tail():
            return JobDebugOutput.objects.filter(job_id=pandaid).values_list("stdout", "received_at").first()

        first = wait_for(tail, timeout=20, what="the first stdout tail")
        assert "tick" in first[0]
        # Every debug heartbeat (1 s, not 6) sends a fresher tail.
        second = wait_for(lambda: (t := tail()) and t[1] > first[1] and t, timeout=4, what="a second tail")
        assert (second[1] - first[1]).total_seconds() < 3 and second[0] != first[0]
        shown = api(url, user_token, "get", f"{pandaid}/peek/").json()
        assert shown["debug_mode"] is True and "tick" in shown["debug_output"]["stdout"]
        assert "Debug output" in requests.get(f"{url}/jobs/{pandaid}/", timeout=15).text

        assert api(url, user_token, "post", f"{pandaid}/debug/", json={"on": False}).json()["debug_mode"] is False
        time.sleep(2.5)  # the next (1 s) heartbeat turns it off on the pilot
        settled = tail()
        time.sleep(3)
        assert tail() == settled  # no more stdout tails: back to the normal heartbeat
        api(url, user_token, "post", "kill/", json={"pandaids": [pandaid]})
    finally:
        exit_code = stop_pilot(pilot, log)
    assert exit_code == 0, pilot_log(tmp_path)
    assert wait_for(lambda: final_status(url, pandaid), what="the Adder") == "cancelled"

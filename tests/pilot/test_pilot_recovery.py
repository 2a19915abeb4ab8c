"""Recovery of what a dead pilot left in the work area.

The leftovers are made the way they happen: a real `python -m pilot`
process that is SIGKILLed mid-job, or that exits without delivering its
final update. A second pilot (in this process) then starts on the same
work area, against a stub dispatcher on 127.0.0.1.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from client.storage import deterministic_pfn
from pilot import errors
from pilot.jobstate import STATE_NAME, Liveness, liveness

from .test_pilot_jobflow import SITE, FakeDispatcher, job_answer, make_pilot

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WRITE_OUTPUT = "#!/bin/sh\necho made > out1.root\necho 'payload done'\n"


class Server(FakeDispatcher):
    """The dispatcher, plus getStatus answering `status` for every job."""

    def __init__(self, stub, jobs, status="running", attempt="1"):
        super().__init__(stub, jobs)
        self.status = status
        self.attempt = attempt
        stub.routes["/server/panda/getStatus"] = self.get_status

    def get_status(self, request):
        count = len(request.form["ids"].split(","))
        return 200, {"StatusCode": 0, "status": "+".join([self.status] * count), "attemptNr": self.attempt}

    def paths(self):
        return [request.path.rsplit("/", 1)[-1] for request in self.stub.requests]


def start_pilot(stub, dirs, *extra):
    workdir, storage = dirs
    argv = [sys.executable, "-m", "pilot", "--server", stub.url, "--site", SITE, "--node", "wn01", "--once",
            "--workdir", str(workdir), "--storage-dir", str(storage), "--max-tries", "2", "--retry-delay", "0.01",
            "--heartbeat", "60", "--kill-grace", "1", *extra]  # fmt: skip
    log = workdir.parent / "first-pilot.log"  # a file, not a pipe nobody reads: that could fill up and block
    with open(log, "ab") as output:
        return subprocess.Popen(argv, cwd=PROJECT_ROOT, stdout=output, stderr=subprocess.STDOUT)


def job_dir(dirs, panda_id=4242) -> Path:
    return dirs[0] / f"PandaJob_{panda_id}"


def read_state(dirs, panda_id=4242) -> dict:
    try:
        return json.loads((job_dir(dirs, panda_id) / STATE_NAME).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def wait_for_progress(dirs, progress, timeout=15) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_state(dirs)
        if state.get("progress") == progress:
            return state
        time.sleep(0.05)
    pytest.fail(f"the pilot never got to {progress}: {read_state(dirs)}")


def wait_for_payload(server, dirs) -> dict:
    """The payload's identity, once it runs and the server has heard `running`."""
    payload = wait_for_progress(dirs, "payload_running")["payload"]
    deadline = time.monotonic() + 15
    while "running" not in server.states and time.monotonic() < deadline:
        time.sleep(0.05)
    return payload


def kill_9(pilot: subprocess.Popen) -> None:
    pilot.send_signal(signal.SIGKILL)
    pilot.wait(timeout=10)


@pytest.fixture
def dirs(tmp_path):
    (tmp_path / "se").mkdir()
    return tmp_path / "work", tmp_path / "se"


def run_second_pilot(stub, dirs, **overrides):
    pilot = make_pilot(stub, dirs, **overrides)
    pilot.run()
    return pilot


def test_saved_final_update_is_resent_and_the_directory_removed(stub_server, dirs):
    server = Server(stub_server, [job_answer(transformation="/bin/true", outFiles="job.log.tgz")])
    updates = server.update_job
    stub_server.routes["/server/panda/updateJob"] = lambda r: (
        (503, b"down") if r.form["state"] in ("finished", "failed") else updates(r)
    )
    first = start_pilot(stub_server, dirs)
    assert first.wait(timeout=30) == 3  # server unreachable for the final update
    saved = json.loads((job_dir(dirs) / "final_update.json").read_text())
    assert read_state(dirs)["progress"] == "final_saved"
    stub_server.routes["/server/panda/updateJob"] = updates  # the server is back
    stub_server.requests.clear()

    run_second_pilot(stub_server, dirs)

    # recovered, then the storage's space reported, before asking for work
    assert server.paths()[:4] == ["getStatus", "updateJob", "space", "getJob"]
    final = server.final
    assert final["state"] == "finished" and final["jobId"] == "4242"
    assert json.loads(final["xml"]) == json.loads(saved["xml"]) and "job.log.tgz" in json.loads(final["xml"])
    assert not job_dir(dirs).exists()


def test_finished_payload_gets_its_outputs_staged_out_and_finished_sent(stub_server, dirs, silent_storage):
    server = Server(stub_server, [job_answer(transformation=WRITE_OUTPUT)])
    # The first pilot's storage hangs: it is killed while staging out.
    first = start_pilot(stub_server, (dirs[0], silent_storage), "--stage-timeout", "120")
    wait_for_progress(dirs, "payload_finished")
    kill_9(first)
    assert server.states == ["starting", "running"]

    run_second_pilot(stub_server, dirs)

    assert server.states == ["starting", "running", "finished"]
    final = server.final
    assert (final["pilotErrorCode"], final["transExitCode"]) == ("0", "0")
    files = json.loads(final["xml"])
    stored = deterministic_pfn(str(dirs[1]), "out1.root")
    assert files["out1.root"]["surl"] == f"file://{stored}" and files["out1.root"]["fsize"] == 5
    assert open(stored).read() == "made\n"
    assert files["job.log.tgz"]["guid"] == "log-guid-1"
    assert "payload done" in final["pilotLog"]
    assert not job_dir(dirs).exists()


def test_job_the_server_has_as_final_is_just_removed(stub_server, dirs):
    server = Server(stub_server, [job_answer(transformation="/bin/sleep", jobPars="60")])
    first = start_pilot(stub_server, dirs)
    payload = wait_for_payload(server, dirs)
    kill_9(first)
    server.status = "finished"

    run_second_pilot(stub_server, dirs)

    assert server.states == ["starting", "running"]  # nothing more was reported
    assert not job_dir(dirs).exists()
    assert liveness(payload) is Liveness.GONE  # the orphaned payload was stopped too


def test_unfinished_job_is_reported_failed_as_recovered(stub_server, dirs):
    server = Server(stub_server, [job_answer(transformation="/bin/sleep", jobPars="60")])
    first = start_pilot(stub_server, dirs)
    payload = wait_for_payload(server, dirs)
    kill_9(first)

    run_second_pilot(stub_server, dirs)

    final = server.final
    assert final["state"] == "failed"
    assert final["pilotErrorCode"] == str(errors.LOSTJOBNOTFINISHED) == "1153"
    assert "recovered after the previous pilot" in final["pilotErrorDiag"]
    assert "had not finished" in final["pilotErrorDiag"]
    assert "job.log.tgz" in json.loads(final["xml"])  # the log, for whoever looks into it
    assert liveness(payload) is Liveness.GONE
    assert not job_dir(dirs).exists()


def test_directory_of_a_live_pilot_is_left_alone(stub_server, dirs):
    server = Server(stub_server, [job_answer(transformation="/bin/sleep", jobPars="60")])
    first = start_pilot(stub_server, dirs)
    try:
        wait_for_payload(server, dirs)
        stub_server.requests.clear()

        second = run_second_pilot(stub_server, dirs)

        assert "getStatus" not in server.paths() and second.jobs_run == 0
        assert job_dir(dirs).exists()
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=15)
    assert server.final["pilotErrorCode"] == str(errors.SIGTERM)  # the first pilot still owns its job


def test_kept_directory_of_a_delivered_job_is_not_reported_again(stub_server, dirs):
    server = Server(stub_server, [job_answer(transformation="/bin/true", outFiles="")])
    assert start_pilot(stub_server, dirs, "--keep-workdir").wait(timeout=30) == 0
    assert read_state(dirs)["progress"] == "done"
    stub_server.requests.clear()

    run_second_pilot(stub_server, dirs)

    assert "getStatus" not in server.paths()
    assert job_dir(dirs).exists()


def test_no_recovery_leaves_leftovers_alone(stub_server, dirs):
    server = Server(stub_server, [job_answer(transformation="/bin/sleep", jobPars="60")])
    first = start_pilot(stub_server, dirs)
    payload = wait_for_payload(server, dirs)
    kill_9(first)
    try:
        run_second_pilot(stub_server, dirs, recovery=False)
        assert "getStatus" not in server.paths() and job_dir(dirs).exists()
    finally:
        os.killpg(payload["pid"], signal.SIGKILL)


def test_server_unreachable_during_recovery_keeps_the_leftover(stub_server, dirs):
    server = Server(stub_server, [job_answer(transformation="/bin/sleep", jobPars="60")])
    first = start_pilot(stub_server, dirs)
    wait_for_payload(server, dirs)
    kill_9(first)
    stub_server.routes["/server/panda/getStatus"] = lambda r: (503, b"down")

    run_second_pilot(stub_server, dirs)  # recovery gives up; the pilot itself goes on

    assert server.paths().count("getStatus") == 3  # --max-tries
    assert server.states == ["starting", "running"]
    assert read_state(dirs)["progress"] == "payload_running"  # left for the next pilot

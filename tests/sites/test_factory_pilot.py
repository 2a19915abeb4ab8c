"""The pilot's side of the factory: --pilot-id, its start/end reports, pilotID on job updates, --max-idle-polls."""

import os
import subprocess
import sys

import pytest

from pilot.settings import PilotSettings
from pilot.worker_status import IdentifiedClient, WorkerStatus, make_client
from tests.pilot.conftest import StubServer

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PILOT_ID = "5f0e2a3c-7d1b-4a9e-8c2f-0123456789ab"
NO_JOB = (200, {"StatusCode": 20, "errorDialog": "no activated jobs"})
OK = (200, {"StatusCode": 0})
STATUS_PATH = "/server/panda/updateWorkerPilotStatus"


@pytest.fixture
def stub():
    server = StubServer().start()
    yield server
    server.close()


def run_pilot(server, tmp_path, *extra, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k not in ("PANDA_PILOT_TOKEN", "PANDA_PILOT_ID", "HARVESTER_ID")}
    env.update(env_extra or {})
    argv = [sys.executable, "-m", "pilot", "--server", server, "--site", "SITE_A", "--workdir", str(tmp_path / "w"),
            "--max-tries", "2", "--retry-delay", "0.01", "--idle-sleep", "0.05", *extra]  # fmt: skip
    return subprocess.run(argv, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_a_factory_pilot_reports_its_start_and_end_and_leaves_when_idle(stub, tmp_path):
    stub.routes["/server/panda/getJob"] = lambda request: NO_JOB
    stub.routes[STATUS_PATH] = lambda request: OK
    done = run_pilot(stub.url, tmp_path, "--max-idle-polls", "3", "--node", "wn01",
                     env_extra={"PANDA_PILOT_ID": PILOT_ID, "HARVESTER_ID": "f1"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "no job in 3 getJob call(s) in a row: leaving" in done.stderr
    assert len(stub.requests_to("/server/panda/getJob")) == 3
    started, finished = (request.form for request in stub.requests_to(STATUS_PATH))
    assert started == {"workerID": PILOT_ID, "harvesterID": "f1", "status": "started", "site": "SITE_A",
                       "node_id": "wn01"}  # fmt: skip
    assert finished["status"] == "finished"
    assert (finished["exitCode"], finished["jobsRun"], finished["exitReason"]) == ("0", "0", "normal end")
    # The order: started before the first getJob, finished after the last.
    paths = [request.path for request in stub.requests]
    assert paths[0] == STATUS_PATH and paths[-1] == STATUS_PATH


def test_the_end_report_carries_a_failing_exit_code(stub, tmp_path):
    stub.routes["/server/panda/getJob"] = lambda request: (403, {"StatusCode": 70, "errorDialog": "refused"})
    stub.routes[STATUS_PATH] = lambda request: OK
    done = run_pilot(stub.url, tmp_path, "--pilot-id", PILOT_ID)
    assert done.returncode == 4
    finished = stub.requests_to(STATUS_PATH)[-1].form
    assert (finished["status"], finished["exitCode"], finished["exitReason"]) == ("finished", "4", "credential refused")
    assert finished["harvesterID"] == ""


def test_a_server_without_the_endpoint_does_not_hurt_the_pilot(stub, tmp_path):
    stub.routes["/server/panda/getJob"] = lambda request: NO_JOB
    done = run_pilot(stub.url, tmp_path, "--pilot-id", PILOT_ID, "--once")
    assert done.returncode == 0, done.stderr
    assert "worker status started not delivered" in done.stderr
    assert len(stub.requests_to(STATUS_PATH)) == 2  # one try each: a 404 is not retried


def test_without_an_id_the_pilot_sends_no_status_and_no_pilot_id(stub, tmp_path):
    stub.routes["/server/panda/getJob"] = lambda request: NO_JOB
    done = run_pilot(stub.url, tmp_path, "--once")
    assert done.returncode == 0, done.stderr
    assert [request.path for request in stub.requests] == ["/server/panda/getJob"]


def test_job_updates_carry_the_pilot_id(stub):
    stub.routes["/server/panda/updateJob"] = lambda request: (200, {"StatusCode": 0, "command": "NULL"})
    settings = PilotSettings(server=stub.url, site="SITE_A", pilot_id=PILOT_ID, max_tries=1)
    client = make_client(settings)
    assert isinstance(client, IdentifiedClient)
    client.update_job({"jobId": 7, "state": "running"})
    assert stub.requests_to("/server/panda/updateJob")[0].form == {
        "jobId": "7",
        "state": "running",
        "pilotID": PILOT_ID,
    }
    assert not isinstance(make_client(PilotSettings(server=stub.url, site="SITE_A")), IdentifiedClient)


def test_a_refused_report_is_only_logged(stub, caplog):
    stub.routes[STATUS_PATH] = lambda request: (400, {"StatusCode": 50, "errorDialog": "unknown worker"})
    settings = PilotSettings(server=stub.url, site="SITE_A", pilot_id=PILOT_ID, max_tries=1)
    assert WorkerStatus(settings, make_client(settings)).started() is False
    assert "unknown worker" in caplog.text

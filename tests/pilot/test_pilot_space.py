"""The storage space report: POST /api/v1/sites/<site>/space, once, never a reason to fail a job."""

import json
import shutil
import time

import pytest

from pilot.client import PandaClient
from pilot.space import report_storage_space

from .test_pilot_jobflow import SITE, FakeDispatcher, job_answer, make_pilot

SPACE_PATH = f"/api/v1/sites/{SITE}/space"


@pytest.fixture
def dirs(tmp_path):
    (tmp_path / "se").mkdir()
    return tmp_path / "work", tmp_path / "se"


def test_space_is_reported_at_start_up_and_after_each_job(stub_server, dirs):
    dispatcher = FakeDispatcher(stub_server, [job_answer(transformation="/bin/true", outFiles="")])
    stub_server.routes[SPACE_PATH] = lambda request: (200, {"site": SITE, "free_bytes": 1})

    make_pilot(stub_server, dirs, credential="pilot-secret").run()

    assert dispatcher.states[-1] == "finished"
    paths = [request.path for request in stub_server.requests]
    assert paths[0] == SPACE_PATH and paths[-1] == SPACE_PATH  # at start-up, and after the job
    reports = stub_server.requests_to(SPACE_PATH)
    assert len(reports) == 2
    usage = shutil.disk_usage(dirs[1])
    for request in reports:
        assert request.method == "POST"
        assert request.headers["Authorization"] == "Bearer pilot-secret"
        assert request.headers["Content-Type"] == "application/json"
        body = json.loads(request.body)
        assert sorted(body) == ["free_bytes", "total_bytes", "used_bytes"]
        assert all(isinstance(value, int) for value in body.values())
        assert body["total_bytes"] == usage.total
        assert 0 < body["used_bytes"] < body["total_bytes"] and 0 < body["free_bytes"] < body["total_bytes"]


def test_a_failing_space_report_is_tried_once_and_never_fails_the_job(stub_server, dirs):
    dispatcher = FakeDispatcher(stub_server, [job_answer(transformation="/bin/true", outFiles="")])
    stub_server.routes[SPACE_PATH] = lambda request: (500, {"detail": "database on fire"})

    pilot = make_pilot(stub_server, dirs)
    pilot.run()

    assert dispatcher.states == ["starting", "running", "finished"]
    assert dispatcher.final["pilotErrorCode"] == "0"
    assert len(stub_server.requests_to(SPACE_PATH)) == 2  # one per report, no retries
    assert pilot.jobs_run == 1


def test_a_server_without_the_endpoint_only_gets_a_warning(stub_server, dirs, caplog):
    dispatcher = FakeDispatcher(stub_server, [job_answer(transformation="/bin/true", outFiles="")])

    make_pilot(stub_server, dirs).run()  # no route: 404

    assert dispatcher.final["state"] == "finished"
    assert len(stub_server.requests_to(SPACE_PATH)) == 2
    assert "space report: HTTP 404" in caplog.text


def test_unreachable_server_and_missing_storage(free_port, tmp_path):
    client = PandaClient(f"http://127.0.0.1:{free_port}", max_tries=5, base_delay=10)
    started = time.monotonic()
    assert report_storage_space(client, SITE, str(tmp_path)) is False  # connection refused: one try, no backoff
    assert time.monotonic() - started < 2
    assert report_storage_space(client, SITE, str(tmp_path / "absent")) is False
    assert report_storage_space(client, SITE, None) is False


def test_site_name_is_quoted_and_the_answer_returned(stub_server, tmp_path):
    stub_server.routes["/api/v1/sites/CERN%2FT0/space"] = lambda request: (200, {"site": "CERN/T0"})
    answer = PandaClient(stub_server.url).report_space("CERN/T0", {"used_bytes": 1, "free_bytes": 2, "total_bytes": 3})
    assert answer == {"site": "CERN/T0"}
    (request,) = stub_server.requests
    assert json.loads(request.body) == {"used_bytes": 1, "free_bytes": 2, "total_bytes": 3}
    assert "Authorization" not in request.headers

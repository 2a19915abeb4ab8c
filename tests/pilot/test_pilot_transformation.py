"""The three transformation forms, run for real."""

import os

import pytest

from pilot import errors
from pilot.errors import PilotFailure
from pilot.payload import KillSwitch, start_payload
from pilot.transformation import build_command

SCRIPT = '#!/bin/sh\necho "args: $*"\n'


def run_command(command, workdir):
    payload = start_payload(command, str(workdir), dict(os.environ))
    result = payload.wait(KillSwitch(), grace=1.0, poll_interval=0.05)
    return result.exit_code, (workdir / "payload.stdout").read_text()


def test_url_form_is_downloaded_as_runme(tmp_path, stub_server):
    stub_server.routes["/trf/user/runme.sh"] = lambda request: (200, SCRIPT.encode())

    command = build_command(stub_server.url + "/trf/user/runme.sh", "a 'b c'", str(tmp_path))

    assert command == [str(tmp_path / "runme"), "a", "b c"]
    assert os.access(tmp_path / "runme", os.X_OK)
    assert run_command(command, tmp_path) == (0, "args: a b c\n")


def test_url_form_download_failure(tmp_path, stub_server):
    stub_server.routes["/trf/user/missing.sh"] = lambda request: (404, b"not here")

    with pytest.raises(PilotFailure) as failure:
        build_command(stub_server.url + "/trf/user/missing.sh", "", str(tmp_path))

    assert failure.value.code == errors.TRFDOWNLOADFAILURE == 1149
    assert len(stub_server.requests) == 1  # a 404 is not retried


def test_url_form_unreachable_host(tmp_path, free_port, monkeypatch):
    monkeypatch.setattr("pilot.transformation.time.sleep", lambda seconds: None)
    with pytest.raises(PilotFailure) as failure:
        build_command(f"http://127.0.0.1:{free_port}/runme.sh", "", str(tmp_path))
    assert failure.value.code == errors.TRFDOWNLOADFAILURE


def test_script_form_is_written_as_runme(tmp_path):
    command = build_command(SCRIPT, "--events 10", str(tmp_path))

    assert command == [str(tmp_path / "runme"), "--events", "10"]
    assert (tmp_path / "runme").read_text() == SCRIPT
    assert run_command(command, tmp_path) == (0, "args: --events 10\n")


def test_executable_form_runs_as_is(tmp_path):
    command = build_command("/bin/echo", 'hello "big world"', str(tmp_path))

    assert command == ["/bin/echo", "hello", "big world"]
    assert not (tmp_path / "runme").exists()
    assert run_command(command, tmp_path) == (0, "hello big world\n")


def test_executable_name_is_looked_up_in_path(tmp_path):
    assert run_command(build_command("echo", "x", str(tmp_path)), tmp_path) == (0, "x\n")


def test_unbalanced_quotes_in_job_pars(tmp_path):
    with pytest.raises(PilotFailure) as failure:
        build_command("/bin/echo", "'unterminated", str(tmp_path))
    assert failure.value.code == errors.UNRECOGNIZEDTRFARGUMENTS


def test_empty_transformation(tmp_path):
    with pytest.raises(PilotFailure) as failure:
        build_command("  ", "", str(tmp_path))
    assert failure.value.code == errors.TRANSFORMNOTFOUND

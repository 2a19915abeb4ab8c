"""`python -m pilot` as a real process: options, credentials, exit codes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from client.storage import deterministic_pfn

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NO_JOB = (200, {"StatusCode": 20, "errorDialog": "no activated jobs for site SITE_A"})


def pilot_command(server, tmp_path, *extra):
    return [
        sys.executable,
        "-m",
        "pilot",
        "--server",
        server,
        "--site",
        "SITE_A",
        "--workdir",
        str(tmp_path / "work"),
        "--max-tries",
        "2",
        "--retry-delay",
        "0.01",
        *extra,
    ]


def run_pilot(server, tmp_path, *extra, env_extra=None):
    environment = {k: v for k, v in os.environ.items() if k != "PANDA_PILOT_TOKEN"}
    environment.update(env_extra or {})
    return subprocess.run(
        pilot_command(server, tmp_path, *extra),
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_once_without_job_exits_zero_and_sends_token_from_environment(stub_server, tmp_path):
    stub_server.routes["/server/panda/getJob"] = lambda r: NO_JOB

    done = run_pilot(stub_server.url, tmp_path, "--once", "--node", "wn07", env_extra={"PANDA_PILOT_TOKEN": "from-env"})

    assert done.returncode == 0, done.stderr
    (request,) = stub_server.requests
    assert request.headers["Authorization"] == "Bearer from-env"
    assert request.form["node"] == "wn07"
    assert "prodSourceLabel" not in request.form
    assert "from-env" not in done.stderr  # the token is never logged


def test_credential_file(stub_server, tmp_path):
    stub_server.routes["/server/panda/getJob"] = lambda r: NO_JOB
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")

    done = run_pilot(stub_server.url, tmp_path, "--once", "--credential-file", str(token_file))

    assert done.returncode == 0, done.stderr
    assert stub_server.requests[0].headers["Authorization"] == "Bearer from-file"


def test_refused_credential_is_fatal(stub_server, tmp_path):
    stub_server.routes["/server/panda/getJob"] = lambda r: (
        403,
        {"StatusCode": 70, "errorDialog": "unknown pilot token"},
    )

    done = run_pilot(stub_server.url, tmp_path, "--credential", "bad")

    assert done.returncode == 4
    assert "unknown pilot token" in done.stderr
    assert len(stub_server.requests) == 1


def test_unreachable_server_is_fatal_after_retries(free_port, tmp_path):
    done = run_pilot(f"http://127.0.0.1:{free_port}", tmp_path)

    assert done.returncode == 3
    assert "gave up after 2 tries" in done.stderr


def test_bad_get_job_request_is_fatal(stub_server, tmp_path):
    stub_server.routes["/server/panda/getJob"] = lambda r: (
        400,
        {"StatusCode": 50, "errorDialog": "unknown site SITE_A"},
    )

    done = run_pilot(stub_server.url, tmp_path)

    assert done.returncode == 5
    assert "unknown site SITE_A" in done.stderr
    assert len(stub_server.requests) == 1


def test_missing_site_is_a_usage_error(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pilot", "--server", "http://x"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "--site" in done.stderr


def job(script, **overrides):
    answer = {
        "StatusCode": 0,
        "PandaID": 77,
        "jobName": "cli_job",
        "transformation": script,
        "jobPars": "",
        "attemptNr": 2,
        "inFiles": "",
        "outFiles": "result.txt,cli.log.tgz",
        "logFile": "cli.log.tgz",
        "logGUID": "cli-log-guid",
        "maxWalltime": "NULL",
    }
    answer.update(overrides)
    return answer


def serve_one_job(stub_server, answer):
    jobs = [answer]
    updates = []

    def update(request):
        updates.append(request.form)
        return 200, {"StatusCode": 0, "command": "NULL"}

    stub_server.routes["/server/panda/getJob"] = lambda r: (200, jobs.pop()) if jobs else NO_JOB
    stub_server.routes["/server/panda/updateJob"] = update
    return updates


def test_one_job_through_the_command_line(stub_server, tmp_path):
    updates = serve_one_job(stub_server, job("#!/bin/sh\necho 42 > result.txt\n"))
    storage = tmp_path / "storage"
    storage.mkdir()

    done = run_pilot(stub_server.url, tmp_path, "--once", "--storage-dir", str(storage))

    assert done.returncode == 0, done.stderr
    assert [u["state"] for u in updates] == ["starting", "running", "finished"]
    assert updates[-1]["attemptNr"] == "2"
    assert set(json.loads(updates[-1]["xml"])) == {"result.txt", "cli.log.tgz"}
    # The catalog's deterministic place, where the server registers it (the surl).
    stored = Path(deterministic_pfn(str(storage), "result.txt"))
    assert stored.read_text() == "42\n"
    assert json.loads(updates[-1]["xml"])["result.txt"]["surl"] == f"file://{stored}"


def test_sigterm_to_the_pilot_reports_the_job_and_exits(stub_server, tmp_path):
    updates = serve_one_job(stub_server, job("/bin/sleep", jobPars="30"))
    pilot = subprocess.Popen(
        pilot_command(stub_server.url, tmp_path, "--kill-grace", "1"),
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not any(u["state"] == "running" for u in updates) and time.monotonic() < deadline:
            time.sleep(0.05)
        pilot.send_signal(signal.SIGTERM)
        _, stderr = pilot.communicate(timeout=10)
    finally:
        pilot.kill()

    assert pilot.returncode == 128 + signal.SIGTERM, stderr
    assert updates[-1]["state"] == "failed"
    assert updates[-1]["pilotErrorCode"] == "1201"
    assert updates[-1]["pilotErrorDiag"] == "pilot received SIGTERM"


def test_storage_timeout_and_recovery_options():
    from pilot.__main__ import build_parser, settings_from_args

    base = ["--server", "http://x", "--site", "SITE_A"]
    chosen = settings_from_args(
        build_parser().parse_args(
            [*base, "--storage-dir", "https://se:8443/data", "--stage-timeout", "30", "--no-recovery"]
        ),
        None,
    )
    assert (chosen.storage_dir, chosen.stage_timeout, chosen.recovery) == ("https://se:8443/data", 30.0, False)
    defaults = settings_from_args(build_parser().parse_args([*base, "--storage-dir", "se"]), None)
    assert (defaults.storage_dir, defaults.stage_timeout, defaults.recovery) == (os.path.abspath("se"), 1800.0, True)

"""Submit jobs over the API, run the real pilot, watch them end with their outputs recorded."""

import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
import requests
from rest_framework.authtoken.models import Token

from client.storage import deterministic_pfn
from jobs.choices import FileStatus, FileType, JobStatus
from jobs.models import Job, JobFile
from sites.services import create_pilot_credential

from ..factories import SiteFactory, UserFactory
from .conftest import ROOT

pytestmark = pytest.mark.live

WRITE_OUTPUT = "#!/bin/sh\necho \"making $1\"\nhead -c 50000 /dev/zero | tr '\\0' 'x' > \"$1\"\n"
FAIL = "#!/bin/sh\necho 'cannot open input' >&2\nexit 3\n"
RUN_LONG = "#!/bin/sh\necho started\nsleep 120\n"


def submit(url, token, jobs):
    response = requests.post(f"{url}/api/v1/jobs/", json=jobs, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()["pandaids"]


def wait_for(predicate, timeout=90, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def job_status(url, pandaid):
    return requests.get(f"{url}/api/v1/jobs/{pandaid}/", timeout=10).json()["status"]


def start_pilot(url, token_file, tmp_path, max_jobs):
    argv = [sys.executable, "-m", "pilot", "--server", url, "--site", "E2E", "--credential-file", str(token_file),
            "--max-jobs", str(max_jobs), "--heartbeat", "1", "--idle-sleep", "1", "--storage-dir", str(tmp_path / "se"),
            "--workdir", str(tmp_path / "wd"), "--kill-grace", "2"]  # fmt: skip
    (tmp_path / "se").mkdir()
    log = open(tmp_path / "pilot.log", "wb")  # noqa: SIM115 - closed by the test
    return subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), log


def test_jobs_run_through_brokerage_pilot_and_adder(live_server_url, celery_worker, tmp_path):
    site = SiteFactory(name="E2E")
    _, pilot_token = create_pilot_credential(name="e2e", sites=[site])
    token_file = tmp_path / "pilot.token"
    token_file.write_text(pilot_token)
    user_token = Token.objects.create(user=UserFactory(username="dave")).key
    ok, bad, long = submit(live_server_url, user_token, [
        {"job_name": "e2e.ok", "transformation": WRITE_OUTPUT, "job_parameters": "e2e.ok.root",
         "output_files": [{"lfn": "e2e.ok.root", "dataset": "user.dave.e2e"}]},
        {"job_name": "e2e.fail", "transformation": FAIL},
        {"job_name": "e2e.long", "transformation": RUN_LONG},
    ])  # fmt: skip
    # Nothing was pinned: the Celery worker's brokerage must place them at the only online site.
    wait_for(lambda: Job.objects.filter(status=JobStatus.ACTIVATED).count() == 3, what="brokerage by the worker")
    pilot, log = start_pilot(live_server_url, token_file, tmp_path, max_jobs=3)
    try:
        wait_for(lambda: job_status(live_server_url, long) == "running", what="the long job to run")
        kill = requests.post(f"{live_server_url}/api/v1/jobs/kill/", json={"pandaids": [long]},
                             headers={"Authorization": f"Bearer {user_token}"}, timeout=10)  # fmt: skip
        assert kill.json()["results"] == {str(long): "kill command sent to the pilot"}
        assert pilot.wait(timeout=120) == 0
    finally:
        if pilot.poll() is None:
            pilot.kill()
        log.close()
    final = {
        pid: wait_for(lambda p=pid: _final(live_server_url, p), what=f"job {pid} to end") for pid in (ok, bad, long)
    }
    assert final == {ok: "finished", bad: "failed", long: "cancelled"}, (tmp_path / "pilot.log").read_text()[-3000:]
    _check_outputs(ok, tmp_path)
    failed = Job.objects.get(pandaid=bad)
    assert (failed.trans_exit_code, failed.exe_error_code) == (3, 3)
    assert "cannot open input" in failed.exe_error_diag
    assert Job.objects.get(pandaid=long).pilot_error_code == 1144


def _final(url, pandaid):
    status = job_status(url, pandaid)
    return status if status in {"finished", "failed", "cancelled", "closed"} else None


def _check_outputs(pandaid, tmp_path):
    output = JobFile.objects.get(job_id=pandaid, type=FileType.OUTPUT)
    stored = Path(output.surl.removeprefix("file://"))
    data = stored.read_bytes()
    assert (output.status, output.fsize) == (FileStatus.READY, 50000) and len(data) == 50000
    assert output.checksum == f"ad:{zlib.adler32(data):08x}"
    assert str(stored) == deterministic_pfn(str(tmp_path / "se"), "e2e.ok.root")
    log = JobFile.objects.get(job_id=pandaid, type=FileType.LOG)
    assert log.status == FileStatus.READY and Path(log.surl.removeprefix("file://")).exists()

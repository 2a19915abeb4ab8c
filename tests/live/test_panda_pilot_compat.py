"""The unchanged PanDA pilot (panda-pilot 3.7.0.36 from PyPI) runs a job of ours to `finished`.

The pilot reads the queue and storage descriptions (sites/schedconfig.py), asks for a job with the
legacy getJob, runs it, stages its log out with the `mv` copytool into the site's storage and
reports through updateJob; the Adder (in a real Celery worker) finishes the job and catalogues
the log. Skipped when the package cannot be installed or PID namespaces are not available.

pilot3 kills every orphaned process of its user when it ends (pilot/util/processes.py
kill_orphans), so it runs with PILOT_NOKILL=1 in its own PID namespace (panda-wire.md §2).
"""

import os
import shutil
import subprocess

import pytest
from rest_framework.authtoken.models import Token

from jobs.choices import FileStatus, FileType, JobStatus
from jobs.models import Job, JobFile
from sites.pilot_config import pilot_config
from sites.services import create_pilot_credential

from ..factories import SiteFactory, UserFactory
from .panda_packages import panda_pilot
from .test_end_to_end import submit, wait_for

pytestmark = [pytest.mark.live, pytest.mark.panda_compat]

QUEUE = "LOCAL_TEST"
# What the pilot factory sets as GTAG for the pilots it starts (their id); pilot3 reports it in pilotID.
PILOT_GTAG = "7d1c9f40-2b8e-4e55-9a51-3f0d6c2a8b11"
# pilot3's generic mode only runs transformations from two known download hosts; with
# HARVESTER_WORKDIR set it copies the script of that name from there instead of downloading it.
TRANSFORMATION = "http://pandaserver-doma.cern.ch:25080/trf/user/runme.sh"
RUNME = '#!/bin/sh\necho "runme.sh: args=$*"\n'


def _pid_namespaces_work():
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True).returncode == 0


def _pilot_config(pilot_dir, server_url, path):
    """The site operator's step (docs/panda-compat.md): pilot3's default.cfg pointed at us."""
    path.write_text(pilot_config((pilot_dir / "pilot" / "util" / "default.cfg").read_text(), server_url))
    return path


def run_pilot(server_url, tmp_path, label="user", credential=None):
    python, launcher = panda_pilot()
    trf_dir = tmp_path / "harvester"
    trf_dir.mkdir()
    (trf_dir / "runme.sh").write_text(RUNME)
    workdir = tmp_path / "pilot-home"
    workdir.mkdir()
    port = server_url.rsplit(":", 1)[1]
    env = dict(os.environ, PILOT_NOKILL="1", HARVESTER_WORKDIR=str(trf_dir), GTAG=PILOT_GTAG,
               HARVESTER_PILOT_CONFIG=str(_pilot_config(launcher.parent, server_url, tmp_path / "pilot.cfg")))  # fmt: skip
    if credential:
        # pilot3's token mode: the file named by PANDA_AUTH_TOKEN, looked up beside PANDA_AUTH_DIR,
        # is sent as "Authorization: Bearer ..." (pilot/util/https.py get_curl_command).
        # No trailing newline: pilot3 puts the file content into the header as it is.
        (tmp_path / "pilot.token").write_text(credential)
        env.update(PANDA_AUTH_TOKEN="pilot.token", PANDA_AUTH_ORIGIN="atlas",
                   PANDA_AUTH_DIR=str(tmp_path / "placeholder"))  # fmt: skip
    argv = ["timeout", "500", "unshare", "--pid", "--fork", "--mount-proc", str(python), str(launcher),
            "-q", QUEUE, "--pilot-user", "generic", "-w", "generic", "--url", "http://127.0.0.1", "-p", port,
            "--queuedata-url", f"{server_url}/cache/schedconfig/{{pandaqueue}}.all.json",
            "--storagedata-url", f"{server_url}/cache/ddmendpoints.json",
            "-j", label, "-t", "-v", "1", "-x", "1", "-d", "-a", str(workdir)]  # fmt: skip
    done = subprocess.run(argv, env=env, cwd=workdir, capture_output=True, text=True, timeout=560)
    return done, workdir


@pytest.fixture
def pilot_ready():
    if not _pid_namespaces_work():
        pytest.skip("unshare --pid needs root (or user namespaces): the real pilot must not run outside one")
    panda_pilot()


@pytest.mark.parametrize("authentication", ["trusted-site", "pilot-credential"])
def test_real_panda_pilot_runs_a_job_to_finished(pilot_ready, live_server_url, celery_worker, tmp_path, authentication):
    """Over plain http pilot3 sends no credential unless given a token: either the site trusts
    unauthenticated pilots, or the pilot sends one of our pilot credentials in its token mode."""
    storage = tmp_path / "storage"
    storage.mkdir()
    trusted = authentication == "trusted-site"
    site = SiteFactory(name=QUEUE, trust_unauthenticated_pilots=trusted, storage_endpoint=str(storage))
    credential = None if trusted else create_pilot_credential(name="pilot3", sites=[site])[1]
    token = Token.objects.create(user=UserFactory(username="pia")).key
    [pandaid] = submit(live_server_url, token, [{
        "job_name": "pilot3.compat", "transformation": TRANSFORMATION, "job_parameters": "hello from panda-pilot",
        "computing_site": QUEUE,
    }])  # fmt: skip
    wait_for(lambda: Job.objects.get(pandaid=pandaid).status == JobStatus.ACTIVATED, what="brokerage")

    done, workdir = run_pilot(live_server_url, tmp_path, credential=credential)
    output = done.stdout + done.stderr
    wait_for(lambda: Job.objects.get(pandaid=pandaid).status in (JobStatus.FINISHED, JobStatus.FAILED),
             timeout=60, what=f"the Adder to finish the job; pilot said:\n{output[-3000:]}")  # fmt: skip

    job = Job.objects.get(pandaid=pandaid)
    assert job.status == JobStatus.FINISHED, (job.pilot_error_code, job.pilot_error_diag, output[-3000:])
    assert job.trans_exit_code == 0
    assert job.computing_site_id == site.pk
    assert job.pilot_id.startswith(f"{PILOT_GTAG}|"), job.pilot_id  # how the factory links pilot3's jobs
    log = JobFile.objects.get(job=job, type=FileType.LOG)
    assert log.status == FileStatus.READY
    assert log.surl.startswith("file://localhost" + str(storage))
    stored = storage / log.surl.removeprefix("file://localhost" + str(storage) + "/")
    assert stored.is_file() and stored.stat().st_size == log.fsize
    assert log.checksum.startswith("ad:")

"""A real pilot factory keeping sites supplied: `manage.py pilot_factory` against gunicorn and a
Celery worker, its pilots running real jobs; the wrapper script fetching and running the pilot;
and, where a Slurm cluster answers on this host, the Slurm plugin end to end."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import requests
from django.utils import timezone
from rest_framework.authtoken.models import Token

from jobs.choices import JobStatus
from jobs.models import Job
from sites.factory import services as factory_services
from sites.models import Pilot, PilotFactory, PilotJob, PilotState
from sites.services import create_pilot_credential

from ..factories import JobFactory, SiteFactory, UserFactory
from .conftest import LiveProcess

pytestmark = pytest.mark.live
FINAL = {"finished", "failed", "cancelled", "closed"}
JOB = '#!/bin/sh\necho "job $1 on $(hostname)"\nsleep 1\n'


def wait_for(predicate, timeout=120, what="condition", process=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if process is not None and process.process.poll() is not None:
            pytest.fail(f"{what}: the factory exited:\n{process.output()[-4000:]}")
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}" + (f"\n{process.output()[-4000:]}" if process else ""))


def submit(url, token, site, n):
    jobs = [{"job_name": f"factory.{site}.{i}", "transformation": JOB, "job_parameters": str(i), "computing_site": site}
            for i in range(n)]  # fmt: skip
    answer = requests.post(f"{url}/api/v1/jobs/", json=jobs, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert answer.status_code == 201, answer.text
    return answer.json()["pandaids"]


def job_statuses(url, pandaids):
    return {pid: requests.get(f"{url}/api/v1/jobs/{pid}/", timeout=10).json()["status"] for pid in pandaids}


def start_factory(name, sites, url, token_file, env, tmp_path, *extra):
    argv = [sys.executable, "manage.py", "pilot_factory", "--name", name, "--sites", ",".join(sites), "--server", url,
            "--credential-file", str(token_file), "--period", "2", "--max-queued", "2", "--max-per-cycle", "2",
            "--workdir", str(tmp_path / "factory"), *extra]  # fmt: skip
    return LiveProcess(f"factory-{name}", argv, env, tmp_path)


def test_a_local_factory_keeps_its_sites_supplied(live_server_url, celery_worker, server_env, tmp_path):
    busy = SiteFactory(name="BUSY", storage_endpoint=str(tmp_path / "se" / "BUSY"), max_running_jobs=3)
    idle, down = SiteFactory(name="IDLE"), SiteFactory(name="DOWN", status="offline")
    waiting_offline = JobFactory(status=JobStatus.ACTIVATED, computing_site=down)
    _, pilot_token = create_pilot_credential(name="live-factory", sites=[busy, idle, down])
    token_file = tmp_path / "pilot.token"
    token_file.write_text(pilot_token)
    user_token = Token.objects.create(user=UserFactory(username="fay")).key
    pandaids = submit(live_server_url, user_token, "BUSY", 6)
    wait_for(lambda: Job.objects.filter(pandaid__in=pandaids, status=JobStatus.ACTIVATED).count() == 6,
             what="the jobs to be activated")  # fmt: skip

    factory = start_factory("live-local", ["BUSY", "IDLE", "DOWN"], live_server_url, token_file, server_env, tmp_path,
                            "--pilot-args", "--max-idle-polls 1 --heartbeat 1 --idle-sleep 1", "--kill-pilots-on-exit")  # fmt: skip
    try:
        statuses = wait_for(lambda: (s := job_statuses(live_server_url, pandaids)) and set(s.values()) <= FINAL and s,
                            timeout=180, what="the jobs to end", process=factory)  # fmt: skip
        assert set(statuses.values()) == {"finished"}, statuses
        wait_for(lambda: not Pilot.objects.filter(state__in=[PilotState.SUBMITTED, PilotState.RUNNING]).exists(),
                 what="the pilots to leave", process=factory)  # fmt: skip
        # Every job is linked to the pilot that ran it, and the counts add up.
        wait_for(lambda: PilotJob.objects.filter(pandaid__in=pandaids).count() == 6, what="the jobs to be linked",
                 process=factory)  # fmt: skip
        pilots = list(Pilot.objects.filter(site=busy))
        assert {pilot.state for pilot in pilots} == {PilotState.FINISHED}, [(p.state, p.exit_reason) for p in pilots]
        assert sum(pilot.jobs_run for pilot in pilots) == 6
        for job in Job.objects.filter(pandaid__in=pandaids):
            link = PilotJob.objects.get(pandaid=job.pandaid)
            assert job.pilot_id == str(link.pilot_id)
        ran = [pilot for pilot in pilots if pilot.jobs_run]
        assert all(p.started_at and p.last_contact_at and p.ended_at and p.exit_code == 0 and p.batch_id for p in ran)
        # Nothing for the offline site (although it has work) nor for the idle one.
        assert not Pilot.objects.filter(site__in=[idle, down]).exists()
        row = PilotFactory.objects.get(name="live-local")
        assert row.last_decisions["DOWN"]["reason"] == "site is offline"
        assert row.last_decisions["IDLE"]["reason"] == "no activated jobs"
        # With no work left it stops submitting: a few more cycles, no new pilot.
        submitted, cycles = len(pilots), row.cycles
        wait_for(lambda: PilotFactory.objects.get(name="live-local").cycles >= cycles + 3, what="three more cycles",
                 process=factory)  # fmt: skip
        assert Pilot.objects.count() == submitted
        assert Job.objects.get(pk=waiting_offline.pk).status == JobStatus.ACTIVATED
        page = requests.get(f"{live_server_url}/scheduler/?json", timeout=10).json()
        (listed,) = page["factories"]
        assert (listed["status"], listed["pilots"]["finished"]) == ("operating", submitted)
    finally:
        factory.process.send_signal(signal.SIGTERM)
        assert factory.process.wait(timeout=60) == 0, factory.output()[-3000:]
        factory.stop()
    assert PilotFactory.objects.get(name="live-local").stopped_at is not None
    assert "submitted 2" in factory.output()


def test_the_wrapper_downloads_the_pilot_and_runs_it(live_server_url, tmp_path):
    site = SiteFactory(name="WRAP", trust_unauthenticated_pilots=True)
    wrapper = tmp_path / "wrapper.sh"
    wrapper.write_text(requests.get(f"{live_server_url}/pilot/wrapper.sh", timeout=10).text)
    env = {k: v for k, v in os.environ.items() if k not in ("PANDA_PILOT_TOKEN", "PANDA_PILOT_ID", "HARVESTER_ID")}
    env["TMPDIR"] = str(tmp_path)
    argv = ["sh", str(wrapper), "--server", live_server_url, "--site", "WRAP", "--workdir", str(tmp_path / "wd")]
    # Run from a directory without this checkout: the pilot must come from the server.
    run = subprocess.run([*argv, "--once"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert f"wrapper: fetching {live_server_url}/pilot/pilot.tar.gz" in run.stderr
    assert "no job" in run.stderr
    assert not list(tmp_path.glob("pandapilot.*"))  # its temporary directory is gone

    # With a factory's pilot id and a job: the job runs and both are recorded.
    row = PilotFactory.objects.create(name="wrap-f", host="h", plugin="slurm", version="1", started_at=timezone.now())
    pilot = factory_services.new_pilot(factory=row, site=site)
    job = JobFactory(status=JobStatus.ACTIVATED, computing_site=site, transformation=JOB, job_parameters="w")
    env.update(PANDA_PILOT_ID=str(pilot.pk), HARVESTER_ID="wrap-f")
    run = subprocess.run([*argv, "--max-idle-polls", "1"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    job.refresh_from_db()
    assert job.status in ("holding", "finished") and job.pilot_id == str(pilot.pk)  # no Celery worker: holding
    pilot.refresh_from_db()
    assert (pilot.state, pilot.exit_code, pilot.jobs_run) == (PilotState.FINISHED, 0, 1)

    # Without a server it says so.
    bad = subprocess.run(["sh", str(wrapper), "--site", "WRAP"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=30)  # fmt: skip
    assert bad.returncode == 10 and "give --server URL" in bad.stderr


def _slurm_answers():
    if not shutil.which("sbatch") or not shutil.which("sinfo"):
        return False
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%a"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and "up" in done.stdout


@pytest.mark.skipif(not _slurm_answers(), reason="no Slurm cluster answers on this host")
def test_a_slurm_factory_runs_jobs_through_the_batch_system(live_server_url, celery_worker, server_env, tmp_path):
    site = SiteFactory(name="SLURMQ", max_running_jobs=2)
    _, pilot_token = create_pilot_credential(name="slurm-factory", sites=[site])
    token_file = tmp_path / "pilot.token"
    token_file.write_text(pilot_token)
    user_token = Token.objects.create(user=UserFactory(username="sol")).key
    pandaids = submit(live_server_url, user_token, "SLURMQ", 3)
    wait_for(lambda: Job.objects.filter(pandaid__in=pandaids, status=JobStatus.ACTIVATED).count() == 3,
             what="the jobs to be activated")  # fmt: skip
    factory = start_factory("live-slurm", ["SLURMQ"], live_server_url, token_file, server_env, tmp_path,
                            "--plugin", "slurm", "--pilot-args", f"--max-idle-polls 1 --heartbeat 1 --workdir {tmp_path}/wn")  # fmt: skip
    try:
        statuses = wait_for(lambda: (s := job_statuses(live_server_url, pandaids)) and set(s.values()) <= FINAL and s,
                            timeout=240, what="the jobs to end", process=factory)  # fmt: skip
        assert set(statuses.values()) == {"finished"}, statuses
        wait_for(lambda: not Pilot.objects.filter(state__in=[PilotState.SUBMITTED, PilotState.RUNNING]).exists(),
                 timeout=120, what="the batch pilots to end", process=factory)  # fmt: skip
        pilots = list(Pilot.objects.filter(site=site))
        assert all(pilot.batch_id.isdigit() for pilot in pilots)
        assert {pilot.state for pilot in pilots} == {PilotState.FINISHED}, [(p.state, p.exit_reason) for p in pilots]
        wait_for(
            lambda: sum(p.jobs_run for p in Pilot.objects.filter(site=site)) == 3, what="jobs_run", process=factory
        )
        # The batch job's output has the wrapper's and the pilot's log.
        logs = list((tmp_path / "factory" / "logs" / "SLURMQ").glob("pilot-*.out"))
        assert logs and any("wrapper: fetching" in log.read_text() for log in logs)
    finally:
        factory.process.send_signal(signal.SIGTERM)
        factory.process.wait(timeout=60)
        factory.stop()

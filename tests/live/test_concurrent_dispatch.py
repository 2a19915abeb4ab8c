"""50 pilots pull 2,000 jobs over real HTTP from gunicorn: every job goes to exactly one pilot."""

import threading
from collections import Counter

import pytest
import requests
from django.utils import timezone

from jobs.choices import FileType, JobStatus
from jobs.models import Job, JobFile, JobStatusLog
from sites.models import PilotActivity
from sites.services import create_pilot_credential

from ..factories import SiteFactory, UserFactory
from .conftest import is_postgres

pytestmark = [pytest.mark.live, pytest.mark.postgres]
N_JOBS = 2000
N_PILOTS = 50


def make_activated_jobs(sites, owner):
    now = timezone.now()
    jobs = [
        Job(job_name=f"conc{i}", transformation="/bin/true", owner=owner, status=JobStatus.ACTIVATED,
            computing_site=sites[i % len(sites)], current_priority=i % 7, creation_time=now,
            modification_time=now, state_change_time=now)
        for i in range(N_JOBS)
    ]  # fmt: skip
    Job.objects.bulk_create(jobs, batch_size=1000)
    JobFile.objects.bulk_create([JobFile(job=job, type=FileType.LOG, lfn=f"{job.job_name}.log.tgz") for job in jobs])


def pilot_loop(url, site_name, token, n_jobs, received, errors):
    session = requests.Session()
    headers = {"Accept": "application/json", "Authorization": f"Bearer {token}"}
    data = {"siteName": site_name, "node": threading.current_thread().name}
    if n_jobs > 1:
        data["nJobs"] = str(n_jobs)
    while True:
        try:
            answer = session.post(f"{url}/server/panda/getJob", data=data, headers=headers, timeout=60).json()
        except (requests.RequestException, ValueError) as exc:
            errors.append(repr(exc))
            return
        if answer["StatusCode"] == 20:
            return
        jobs = answer["jobs"] if "jobs" in answer else [answer]
        received.extend(job["PandaID"] for job in jobs)


@pytest.fixture(params=["single-statement", "orm"])
def dispatch_path(request, server_env):
    server_env["PANDA_DISPATCH_SINGLE_STATEMENT"] = "1" if request.param == "single-statement" else "0"
    return request.param


def test_fifty_concurrent_pilots_dispatch_every_job_exactly_once(dispatch_path, live_server_url):
    if not is_postgres():
        pytest.skip("row-level locking with SKIP LOCKED needs PostgreSQL")
    sites = [SiteFactory(name=f"CONC{i}") for i in range(4)]
    _, token = create_pilot_credential(name="concurrency", sites=sites)
    make_activated_jobs(sites, UserFactory(username="carol"))
    received, errors = [], []
    threads = [
        threading.Thread(target=pilot_loop, name=f"wn{i:02d}", args=(live_server_url, sites[i % 4].name, token,
                                                                      1 if i % 2 else 5, received, errors))
        for i in range(N_PILOTS)
    ]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    duplicates = [pandaid for pandaid, n in Counter(received).items() if n > 1]
    assert duplicates == []
    assert len(received) == N_JOBS
    assert Job.objects.filter(status=JobStatus.SENT, n_sent=1).count() == N_JOBS
    assert JobStatusLog.objects.filter(new_status=JobStatus.SENT).count() == N_JOBS
    assert sum(PilotActivity.objects.filter(site__in=sites).values_list("jobs_sent", flat=True)) == N_JOBS

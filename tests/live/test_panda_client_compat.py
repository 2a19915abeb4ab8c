"""The unchanged panda-client 2.2.0 from PyPI against the real server: submit, status, kill, hello.

The client runs in its own virtualenv (tests/live/panda_packages.py) as a subprocess, configured
only through its documented environment variables (docs/panda-compat.md "panda-client: jobs").
"""

import json
import os
import subprocess

import pytest
from rest_framework.authtoken.models import Token

from jobs.choices import JobStatus
from jobs.models import Job
from jobs.panda_jobspec import CLIENT_FILE_ATTRIBUTES, JOB_ATTRIBUTES

from ..factories import JobFactory, SiteFactory, UserFactory
from .panda_packages import panda_client_python

pytestmark = [pytest.mark.live, pytest.mark.panda_compat, pytest.mark.django_db(transaction=True)]

# Runs inside the panda-client virtualenv. The client prints its own diagnostics on stdout, so the
# result is the last line, marked.
CLIENT_SCRIPT = r"""
import datetime, json, sys
from pandaclient import Client
from pandaclient.FileSpec import FileSpec
from pandaclient.JobSpec import JobSpec

def describe(jobs):
    return [None if job is None else {
        "PandaID": job.PandaID, "jobStatus": job.jobStatus, "jobName": job.jobName,
        "computingSite": job.computingSite, "prodUserName": job.prodUserName,
        "creationTime_is_datetime": isinstance(job.creationTime, datetime.datetime),
        "taskBufferErrorDiag": job.taskBufferErrorDiag,
        "files": [[f.lfn, f.type, f.dataset, f.PandaID] for f in job.Files],
    } for job in jobs]

def submit_one():
    job = JobSpec()
    job.jobDefinitionID = 1
    job.jobName = "compat-job"
    job.transformation = "echo"
    job.jobParameters = "hello from panda-client"
    job.prodSourceLabel = "user"
    job.computingSite = "LOCAL_TEST"
    job.assignedPriority = job.currentPriority = 900
    log = FileSpec()
    log.lfn, log.type, log.dataset, log.destinationDBlock = "compat-job.log.tgz", "log", "user.test.log", "user.test.log"
    job.addFile(log)
    return Client.submitJobs([job])

result = {"attributes": [list(JobSpec._attributes), list(FileSpec._attributes)], "hello": list(Client.hello())}
if sys.argv[1] == "user":
    status, submitted = submit_one()
    result["submit"] = [status, submitted]
    pandaid = submitted[0][0]
    status, jobs = Client.getJobStatus([pandaid, 999999999])
    result["before"] = [status, describe(jobs)]
    result["kill"] = list(Client.killJobs([pandaid]))
    status, jobs = Client.getJobStatus([pandaid])
    result["after"] = [status, describe(jobs)]
    status, jobs = Client.getFullJobStatus([pandaid])
    result["full"] = [status, describe(jobs)]
else:
    known = int(sys.argv[2])
    status, jobs = Client.getJobStatus([known])
    result["status"] = [status, describe(jobs)]
    result["submit"] = list(submit_one())
    result["kill"] = list(Client.killJobs([known]))
print("RESULT " + json.dumps(result, default=str))
"""


def run_client(python, url, home, *argv, token=None):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PANDA", "OIDC_", "X509_"))}
    server = f"{url}/server/panda"
    env.update(PANDA_URL=server, PANDA_URL_SSL=server, PANDACACHE_URL=server, PANDA_BEHIND_REAL_LB="1", HOME=str(home))
    if token:
        env.update(PANDA_AUTH="oidc", PANDA_AUTH_VO="test", PANDA_AUTH_ID_TOKEN=token)
    done = subprocess.run([str(python), "-c", CLIENT_SCRIPT, *argv], env=env, cwd=home,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, f"client failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT ") :]), done.stdout


def test_panda_client_submits_reads_and_kills_a_job(live_server_url, tmp_path):
    python = panda_client_python()
    SiteFactory(name="LOCAL_TEST")
    token = Token.objects.create(user=UserFactory(username="alice")).key

    result, output = run_client(python, live_server_url, tmp_path, "user", token=token)

    assert result["attributes"] == [list(JOB_ATTRIBUTES), list(CLIENT_FILE_ATTRIBUTES)], "panda-client's specs changed"
    assert result["hello"] == [0, ""]
    status, submitted = result["submit"]
    assert status == 0, output
    [[pandaid, definition, name]] = submitted
    assert (definition, name) == (1, "compat-job")
    job = Job.objects.get(pandaid=pandaid)
    assert (job.owner.username, job.computing_site.name, job.job_parameters) == (
        "alice",
        "LOCAL_TEST",
        "hello from panda-client",
    )
    assert job.files.get(type="log").dataset == "user.test.log"

    status, (before, unknown) = result["before"]
    assert status == 0 and unknown is None
    assert before == {
        "PandaID": pandaid, "jobStatus": "defined", "jobName": "compat-job", "computingSite": "LOCAL_TEST",
        "prodUserName": "alice", "creationTime_is_datetime": True, "taskBufferErrorDiag": "NULL",
        "files": [["compat-job.log.tgz", "log", "user.test.log", pandaid]],
    }  # fmt: skip
    assert result["kill"] == [0, [True]]
    status, [after] = result["after"]
    assert status == 0 and (after["jobStatus"], after["taskBufferErrorDiag"]) == ("cancelled", "killed by alice")
    assert result["full"][1][0]["jobStatus"] == "cancelled"
    assert Job.objects.get(pandaid=pandaid).status == JobStatus.CANCELLED


def test_anonymous_panda_client_reads_but_cannot_write(live_server_url, tmp_path):
    python = panda_client_python()
    site = SiteFactory(name="LOCAL_TEST")
    job = JobFactory(computing_site=site, job_name="someone-elses", status=JobStatus.ACTIVATED)

    result, output = run_client(python, live_server_url, tmp_path, "anonymous", str(job.pk))

    assert result["hello"] == [0, ""]
    status, [seen] = result["status"]
    assert status == 0 and (seen["PandaID"], seen["jobStatus"], seen["jobName"]) == (
        job.pk,
        "activated",
        "someone-elses",
    )
    # Writes answer 401: the client reports a failure (255) and no data.
    assert result["submit"] == [255, None] and result["kill"] == [255, None]
    assert Job.objects.count() == 1 and Job.objects.get().status == JobStatus.ACTIVATED

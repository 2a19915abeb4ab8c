import json
from urllib.parse import parse_qs

import pytest
from django.test import Client

from jobs.choices import FileType, JobStatus
from jobs.models import Job, JobReport, JobStatusLog
from sites.choices import SiteStatus

from ..factories import JobFactory, JobFileFactory, SiteFactory

pytestmark = pytest.mark.django_db
JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture(autouse=True, params=["prepared-statement", "single-statement", "orm"])
def dispatch_path(request, settings):
    """Every getJob test runs against each dispatch implementation (they differ on PostgreSQL):
    the single statement prepared with a generic plan (the default), planned per call, and the ORM."""
    settings.PANDA = {
        **settings.PANDA,
        "DISPATCH_SINGLE_STATEMENT": request.param != "orm",
        "DISPATCH_PREPARED": request.param == "prepared-statement",
    }
    return request.param


class Pilot:
    """A pilot speaking the PanDA protocol through Django's test client."""

    def __init__(self, site, token=None, node="wn042"):
        self.client = Client()
        self.site = site
        self.node = node
        self.headers = dict(JSON)
        if token:
            self.headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"

    def get_job(self, **params):
        response = self.client.post(
            "/server/panda/getJob", {"siteName": self.site, "node": self.node, **params}, **self.headers
        )
        return response.status_code, response.json()

    def update(self, pandaid, state, **params):
        data = {"jobId": pandaid, "state": state, "siteName": self.site, "node": self.node, **params}
        response = self.client.post("/server/panda/updateJob", data, **self.headers)
        return response.status_code, response.json()


def activated(site, **kwargs):
    job = JobFactory(computing_site=site, status=JobStatus.ACTIVATED, **kwargs)
    JobFileFactory(
        job=job, type=FileType.INPUT, lfn=f"in.{job.pk}.root", fsize=100, checksum="ad:00000001", dataset="ds.in"
    )
    JobFileFactory(
        job=job, type=FileType.OUTPUT, lfn=f"out.{job.pk}.root", dataset="ds.out", destination_dblock="ds.out_sub1"
    )
    JobFileFactory(job=job, type=FileType.LOG, lfn=f"log.{job.pk}.tgz", dataset="ds.log")
    return job


def test_getjob_hands_out_the_highest_priority_job_with_panda_keys(site, pilot_token):
    activated(site, current_priority=10)
    best = activated(site, current_priority=900, job_parameters="-n 5", min_ram_count=1000)
    status, job = Pilot("BNL", pilot_token).get_job(mem="2000", diskSpace="5000")
    assert status == 200 and job["StatusCode"] == 0
    assert job["PandaID"] == best.pk
    assert job["jobPars"] == "-n 5"
    assert job["inFiles"] == f"in.{best.pk}.root" and job["fsize"] == "100" and job["checksum"] == "ad:00000001"
    assert job["outFiles"] == f"out.{best.pk}.root,log.{best.pk}.tgz"
    assert job["logFile"] == f"log.{best.pk}.tgz" and job["logGUID"]
    assert job["destinationDblock"] == "ds.out_sub1,NULL" and job["taskID"] == "NULL"
    assert job["ddmEndPointOut"] == "BNL,BNL"
    best.refresh_from_db()
    assert (best.status, best.modification_host, best.n_sent) == (JobStatus.SENT, "wn042", 1)
    assert site.pilot_activity.__class__.objects.get(site=site).jobs_sent == 1


def test_getjob_respects_the_pilots_memory_and_disk(site, pilot_token):
    activated(site, min_ram_count=8000)
    activated(site, max_disk_count=90000)
    status, answer = Pilot("BNL", pilot_token).get_job(mem="4000", diskSpace="10000")
    assert answer == {"StatusCode": 20, "errorDialog": "no activated job for site BNL"}


def test_getjob_with_njobs_wraps_the_jobs_in_a_list(site, pilot_token):
    for _ in range(5):
        activated(site)
    _, answer = Pilot("BNL", pilot_token).get_job(nJobs="3")
    assert answer["StatusCode"] == 0 and len(answer["jobs"]) == 3
    assert Job.objects.filter(status=JobStatus.SENT).count() == 3


def test_getjob_answers_url_encoded_without_the_json_accept_header(site, pilot_token):
    job = activated(site)
    response = Client().post("/server/panda/getJob", {"siteName": "BNL"}, HTTP_AUTHORIZATION=f"Bearer {pilot_token}")
    fields = parse_qs(response.content.decode())
    assert fields["StatusCode"] == ["0"] and fields["PandaID"] == [str(job.pk)]


def test_pilots_only_get_jobs_of_a_site_their_credential_is_bound_to(site, pilot_token):
    other = SiteFactory(name="CERN")
    activated(other)
    status, answer = Pilot("CERN", pilot_token).get_job()
    assert (status, answer["StatusCode"]) == (403, 70)
    assert answer["errorDialog"] == "pilot credential is not bound to site 'CERN'"
    status, answer = Pilot("CERN").get_job()
    assert status == 403 and "needs a pilot credential" in answer["errorDialog"]
    status, answer = Pilot("CERN", "forged-token").get_job()
    assert status == 403 and "unknown or revoked" in answer["errorDialog"]
    assert Job.objects.filter(status=JobStatus.SENT).count() == 0


def test_a_site_trusting_unauthenticated_pilots_needs_no_credential():
    farm = SiteFactory(name="LOCALFARM", trust_unauthenticated_pilots=True)
    job = activated(farm)
    _, answer = Pilot("LOCALFARM").get_job()
    assert answer["PandaID"] == job.pk


def test_offline_sites_get_no_jobs_and_test_sites_only_test_jobs(site, pilot_token):
    activated(site)
    site.status = SiteStatus.OFFLINE
    site.save()
    assert Pilot("BNL", pilot_token).get_job()[1]["StatusCode"] == 20
    site.status = SiteStatus.TEST
    site.save()
    assert Pilot("BNL", pilot_token).get_job()[1]["StatusCode"] == 20
    test_job = activated(site, prod_source_label="test")
    assert Pilot("BNL", pilot_token).get_job()[1]["PandaID"] == test_job.pk


@pytest.mark.parametrize(
    "params,message",
    [({"siteName": ""}, "siteName is required"), ({"nJobs": "0"}, "nJobs must be between 1 and 100"),
     ({"mem": "lots"}, "mem must be a number"), ({"siteName": "NOWHERE"}, "unknown site 'NOWHERE'")],
)  # fmt: skip
def test_bad_getjob_requests_get_a_400_and_change_nothing(site, pilot_token, params, message):
    activated(site)
    pilot = Pilot("BNL", pilot_token)
    response = pilot.client.post("/server/panda/getJob", {"siteName": "BNL", **params}, **pilot.headers)
    assert response.status_code == 400
    assert response.json() == {"StatusCode": 50, "errorDialog": message} or message in response.json()["errorDialog"]
    assert Job.objects.filter(status=JobStatus.SENT).count() == 0


def run_to_holding(pilot, pandaid, xml):
    assert pilot.update(pandaid, "starting")[1]["command"] == "NULL"
    assert pilot.update(pandaid, "running")[1]["command"] == "NULL"
    return pilot.update(
        pandaid, "finished", xml=json.dumps(xml), transExitCode="0", cpuConsumptionTime="12", maxRSS="2048"
    )


def test_updatejob_walks_the_job_to_holding_and_queues_the_adder(site, pilot_token, django_capture_on_commit_callbacks):
    job = activated(site)
    pilot = Pilot("BNL", pilot_token)
    pilot.get_job()
    xml = {f"out.{job.pk}.root": {"guid": "g1", "fsize": 10, "adler32": "0a0b0c0d", "surl": "file:///se/out"}}
    with django_capture_on_commit_callbacks() as callbacks:
        status, answer = run_to_holding(pilot, job.pk, xml)
    assert (status, answer) == (200, {"StatusCode": 0, "command": "NULL"})
    job.refresh_from_db()
    assert (job.status, job.trans_exit_code, job.cpu_consumption_time, job.max_rss) == (JobStatus.HOLDING, 0, 12, 2048)
    assert job.start_time is not None and job.end_time is not None
    assert JobReport.objects.get(job=job).output_files == xml
    assert len(callbacks) == 1  # the Adder task, queued after commit


def test_repeated_and_late_reports_never_roll_a_job_back(site, pilot_token):
    job = activated(site)
    pilot = Pilot("BNL", pilot_token)
    pilot.get_job()
    run_to_holding(pilot, job.pk, {})
    logged = JobStatusLog.objects.filter(job=job).count()
    assert pilot.update(job.pk, "finished", xml="{}")[1]["command"] == "alreadydone"
    assert pilot.update(job.pk, "running")[1]["command"] == "alreadydone"
    assert pilot.update(job.pk, "starting")[1]["command"] == "alreadydone"
    job.refresh_from_db()
    assert job.status == JobStatus.HOLDING
    assert JobStatusLog.objects.filter(job=job).count() == logged


def test_a_repeated_final_report_can_supply_the_missing_file_list(site, pilot_token):
    job = activated(site)
    pilot = Pilot("BNL", pilot_token)
    pilot.get_job()
    run_to_holding(pilot, job.pk, {})
    xml = {f"out.{job.pk}.root": {"guid": "g", "fsize": 1, "adler32": "00000001"}}
    assert pilot.update(job.pk, "finished", xml=json.dumps(xml))[1]["command"] == "alreadydone"
    assert JobReport.objects.get(job=job).output_files == xml


def test_reports_for_final_unknown_or_stale_jobs(site, pilot_token):
    pilot = Pilot("BNL", pilot_token)
    done = JobFactory(computing_site=site, status=JobStatus.FINISHED)
    assert pilot.update(done.pk, "running")[1]["command"] == "alreadydone"
    assert pilot.update(987654, "running")[1]["command"] == "tobekilled"
    running = JobFactory(computing_site=site, status=JobStatus.RUNNING, attempt_nr=2)
    assert pilot.update(running.pk, "running", attemptNr="1")[1]["command"] == "tobekilled"
    assert pilot.update(running.pk, "running", attemptNr="2")[1]["command"] == "NULL"


def test_heartbeat_updates_modification_time_and_delivers_kill_commands(site, pilot_token):
    job = JobFactory(computing_site=site, status=JobStatus.RUNNING)
    before = job.modification_time
    pilot = Pilot("BNL", pilot_token)
    assert pilot.update(job.pk, "running", cpuConsumptionTime="30")[1]["command"] == "NULL"
    job.refresh_from_db()
    assert job.modification_time > before and job.cpu_consumption_time == 30
    Job.objects.filter(pk=job.pk).update(command_to_pilot="tobekilled")
    assert pilot.update(job.pk, "running")[1]["command"] == "tobekilled"


def test_a_pilot_cannot_update_another_sites_job(site, pilot_token):
    other = SiteFactory(name="CERN", trust_unauthenticated_pilots=True)
    job = JobFactory(computing_site=other, status=JobStatus.RUNNING)
    status, answer = Pilot("BNL", pilot_token).update(job.pk, "failed")
    assert (status, answer["StatusCode"]) == (403, 70)
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING


@pytest.mark.parametrize(
    "params,message",
    [({"xml": "{not json"}, "xml is not valid JSON"), ({"xml": "[1, 2]"}, "xml must be a JSON object"),
     ({"transExitCode": "zero"}, "transExitCode must be a number"), ({"jobId": ""}, "jobId and state are required")],
)  # fmt: skip
def test_bad_final_reports_are_refused_and_change_nothing(site, pilot_token, params, message):
    job = JobFactory(computing_site=site, status=JobStatus.RUNNING)
    status, answer = Pilot("BNL", pilot_token).update(job.pk, "finished", **params)
    assert status == 400 and message in answer["errorDialog"]
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING
    assert not JobReport.objects.exists()


def test_unsupported_states_are_ignored(site, pilot_token):
    job = JobFactory(computing_site=site, status=JobStatus.RUNNING)
    assert Pilot("BNL", pilot_token).update(job.pk, "stagein")[1] == {"StatusCode": 0, "command": "NULL"}
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING


def test_getstatus_reports_states_and_attempts_in_order(site):
    a = JobFactory(status=JobStatus.RUNNING, attempt_nr=1)
    b = JobFactory(status=JobStatus.FINISHED, attempt_nr=2)
    response = Client().post("/server/panda/getStatus", {"ids": f"{b.pk},{a.pk},999999"}, **JSON)
    assert response.json() == {"StatusCode": 0, "status": "finished+running+notfound", "attemptNr": "2+1+0"}
    assert Client().post("/server/panda/getStatus", {"ids": "x"}, **JSON).status_code == 400


def test_a_site_at_its_running_job_limit_gets_no_more_jobs(site, pilot_token):
    site.max_running_jobs = 3
    site.save()
    JobFactory.create_batch(2, computing_site=site, status=JobStatus.RUNNING)
    for _ in range(4):
        activated(site)
    _, answer = Pilot("BNL", pilot_token).get_job(nJobs="5")
    assert len(answer["jobs"]) == 1  # room for one more
    _, answer = Pilot("BNL", pilot_token).get_job()
    assert answer == {"StatusCode": 20, "errorDialog": "site BNL is at its limit of 3 running jobs"}
    site.max_running_jobs = 0  # no limit
    site.save()
    assert Pilot("BNL", pilot_token).get_job()[1]["StatusCode"] == 0

"""PanDA API v1 job functions as panda-client 2.2 calls them (jobs/panda_api.py, docs/panda-compat.md)."""

import datetime
import json

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs.choices import FileType, JobStatus
from jobs.models import Job, JobFile, JobStatusLog
from jobs.panda_jobspec import CLIENT_FILE_ATTRIBUTES, JOB_ATTRIBUTES, SERVER_FILE_ATTRIBUTES

from ..factories import JobFactory, JobFileFactory, UserFactory, grant_role

pytestmark = pytest.mark.django_db

SUBMIT = "/api/v1/job/submit"
DESCRIBE = "/api/v1/job/get_description"
KILL = "/api/v1/job/kill"


def panda_file(**values):
    """A FileSpec as the client's dump_to_json_serializable() sends it: 18 values, then the owner (null)."""
    unknown = set(values) - set(CLIENT_FILE_ATTRIBUTES)
    assert not unknown, unknown
    return [values.get(name, "NULL") for name in CLIENT_FILE_ATTRIBUTES] + [None]


def panda_job(files=(), **values):
    """A JobSpec as the client sends it: 126 values in class order ("NULL" if unset), then the files."""
    unknown = set(values) - set(JOB_ATTRIBUTES)
    assert not unknown, unknown
    state = []
    for name in JOB_ATTRIBUTES:
        value = values.get(name, "NULL")
        if isinstance(value, datetime.datetime):
            value = {"_datetime_object": value.strftime("%Y-%m-%d %H:%M:%S.%f")}
        state.append(value)
    return state + [list(files)]


def realistic_job(**overrides):
    """What a panda-client script typically fills in (the rest stays "NULL")."""
    values = dict(
        jobDefinitionID=7, jobName="job-a", transformation="echo", jobParameters="hello world",
        prodSourceLabel="user", computingSite="BNL", assignedPriority=900, currentPriority=900,
        creationHost="vm", creationTime=datetime.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=datetime.UTC), AtlasRelease="Atlas-27.0",
        cmtConfig="x86_64-el9-gcc13-opt", coreCount=2, minRamCount=2000, maxDiskCount=5000, maxWalltime=3600,
        jediTaskID=42, jobsetID=9, VO="atlas", specialHandling="ddm:rucio",
        container_name="docker://alpine:3",
        files=[
            panda_file(lfn="in.root", type="input", dataset="mc.in", GUID="5f6c2f4e-0000-4000-8000-000000000001",
                       scope="mc", fsize=1234, checksum="ad:0A0B0C0D"),
            panda_file(lfn="out.root", type="output", destinationDBlock="user.alice.out", scope="user.alice"),
            panda_file(lfn="job-a.log.tgz", type="log", dataset="user.alice.log", scope="user.alice"),
        ],
    )  # fmt: skip
    values.update(overrides)
    return panda_job(**values)


def submit(client, jobs, **extra):
    return client.post(SUBMIT, {"jobs": json.dumps(jobs), **extra}, format="json")


def token_client(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {Token.objects.get_or_create(user=user)[0].key}")
    return client


def test_attribute_lists_are_panda_clients():
    assert len(JOB_ATTRIBUTES) == 126 == len(set(JOB_ATTRIBUTES))
    assert JOB_ATTRIBUTES[:2] == ("PandaID", "jobDefinitionID") and JOB_ATTRIBUTES[-1] == "outputFileType"
    assert JOB_ATTRIBUTES.index("jobName") == 19 and JOB_ATTRIBUTES.index("computingSite") == 47
    assert len(CLIENT_FILE_ATTRIBUTES) == 18 and len(SERVER_FILE_ATTRIBUTES) == 22
    assert SERVER_FILE_ATTRIBUTES[0] == "row_ID" and SERVER_FILE_ATTRIBUTES[-1] == "attemptNr"


def test_submit_round_trip_stores_the_job_and_its_files(api, user, site):
    response = submit(api, [realistic_job(), realistic_job(jobName="job-b", jobDefinitionID="NULL")])
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True and body["message"] == ""
    (first, a_def, a_name), (second, b_def, b_name) = body["data"]
    assert (a_def, a_name, b_def, b_name) == (7, "job-a", None, "job-b")

    job = Job.objects.get(pandaid=first)
    assert (job.owner, job.status, job.computing_site, job.job_parameters) == (
        user,
        JobStatus.DEFINED,
        site,
        "hello world",
    )
    assert (job.assigned_priority, job.core_count, job.min_ram_count, job.max_disk_count, job.max_walltime) == (
        900, 2, 2000, 5000, 3600)  # fmt: skip
    assert (job.task_id, job.jobset_id, job.job_definition_id, job.vo) == (42, 9, 7, "atlas")
    assert (job.sw_release, job.cmt_config, job.container_name, job.special_handling) == (
        "Atlas-27.0", "x86_64-el9-gcc13-opt", "docker://alpine:3", "ddm:rucio")  # fmt: skip
    files = {item.type: item for item in JobFile.objects.filter(job=job)}
    assert set(files) == {FileType.INPUT, FileType.OUTPUT, FileType.LOG}
    given = files[FileType.INPUT]
    assert (given.lfn, given.guid, given.dataset, given.scope, given.fsize, given.checksum) == (
        "in.root", "5f6c2f4e-0000-4000-8000-000000000001", "mc.in", "mc", 1234, "ad:0a0b0c0d")  # fmt: skip
    assert (files[FileType.OUTPUT].lfn, files[FileType.OUTPUT].destination_dblock) == ("out.root", "user.alice.out")
    assert (files[FileType.LOG].lfn, files[FileType.LOG].dataset) == ("job-a.log.tgz", "user.alice.log")
    assert JobStatusLog.objects.filter(job_id__in=[first, second], new_status=JobStatus.DEFINED).count() == 2


def test_null_values_leave_our_defaults(api, site):
    job = panda_job(jobName="bare", transformation="echo", jediTaskID=0, taskID=5, jobDefinitionID=0)
    response = submit(api, [job])
    assert response.status_code == 200, response.content
    pandaid, definition, name = response.json()["data"][0]
    stored = Job.objects.get(pandaid=pandaid)
    assert (definition, name) == (None, "bare")
    # jediTaskID 0 means "none" to PanDA, so the legacy taskID is taken.
    assert (stored.task_id, stored.job_definition_id, stored.computing_site, stored.prod_source_label) == (
        5, None, None, "user")  # fmt: skip
    assert (stored.core_count, stored.min_ram_count, stored.max_attempt, stored.assigned_priority) == (1, 0, 3, 1000)
    # Without a log FileSpec the submission names the log itself.
    assert list(JobFile.objects.filter(job=stored).values_list("type", flat=True)) == [FileType.LOG]


def _twelve_values():
    return [["NULL"] * 11 + [[]]]


@pytest.mark.parametrize(
    "jobs,message",
    [
        ("not json", "jobs: not valid JSON"),
        ({"jobName": "x"}, "jobs: expected a JSON list of jobs, got dict"),
        (_twelve_values(), "jobs[0]: expected a list of 127 values (the JobSpec attributes, then the files), got 12"),
        ([{"jobName": "x"}], "jobs[0]: expected a list of 127 values (the JobSpec attributes, then the files), got a dict"),
        ([realistic_job(), realistic_job(minRamCount="lots")], "jobs[1]: minRamCount: A valid integer is required."),
        ([realistic_job(jobName="NULL")], "jobs[0]: jobName: This field is required."),
        ([realistic_job(coreCount=0)], "jobs[0]: coreCount: Ensure this value is greater than or equal to 1."),
        ([realistic_job(prodSourceLabel="No Label")], "jobs[0]: prodSourceLabel:"),
        ([realistic_job(files=["oops"])], "jobs[0].Files[0]: expected a list of 19 values (the FileSpec attributes, then null), got a str"),
        ([realistic_job(files=[["in.root", "input"]])], "jobs[0].Files[0]: expected a list of 19 values"),
        ([realistic_job(files=[panda_file(lfn="a", type="pseudo")])], "jobs[0].Files[0].type: expected 'input', 'output' or 'log', got 'pseudo'"),
        ([realistic_job(files=[panda_file(type="input")])], "jobs[0].Files[0].lfn: every file needs a name"),
        ([realistic_job(files=[panda_file(lfn="../etc/passwd", type="output")])], "jobs[0]: Files (output) file '../etc/passwd': lfn:"),
        ([realistic_job(files=[panda_file(lfn="in.root", type="input", checksum="md5:abc")])], "jobs[0]: Files (input) file 'in.root': checksum:"),
        ([realistic_job(files=[panda_file(lfn="a.log", type="log"), panda_file(lfn="b.log", type="log")])], "jobs[0].Files: 2 files of type 'log'; a job has at most one"),
        ([realistic_job(creationTime={"_datetime_object": "yesterday"})], "jobs: bad datetime 'yesterday'"),
        ([realistic_job(computingSite="NOWHERE")], "jobs[0].computing_site: unknown site 'NOWHERE'"),
    ],
)  # fmt: skip
def test_bad_payloads_are_refused_with_a_message_and_write_nothing(api, site, jobs, message):
    payload = jobs if isinstance(jobs, str) else json.dumps(jobs)
    response = api.post(SUBMIT, {"jobs": payload}, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["success"] is False and body["data"] is None
    assert body["message"].startswith(message), body["message"]
    assert Job.objects.count() == 0 and JobFile.objects.count() == 0 and JobStatusLog.objects.count() == 0


def test_bodies_that_are_not_a_submission(api):
    assert api.post(SUBMIT, {}, format="json").json()["message"].startswith("jobs is required")
    assert api.post(SUBMIT, [1, 2], format="json").json()["message"] == "the request body must be a JSON object"
    response = submit(api, [])
    assert response.status_code == 400
    assert response.json() == {"success": False, "message": "No jobs were submitted", "data": None}


def test_anonymous_or_bad_token_submit_is_refused(db, site):
    anonymous = submit(APIClient(), [realistic_job()])
    assert anonymous.status_code == 401
    assert anonymous.json()["success"] is False and "PANDA_AUTH_ID_TOKEN" in anonymous.json()["message"]
    forged = APIClient()
    forged.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert submit(forged, [realistic_job()]).status_code == 401
    assert Job.objects.count() == 0


def test_the_services_refusals_come_back_in_the_envelope(api, site):
    response = submit(api, [realistic_job(prodSourceLabel="managed")])
    assert response.status_code == 403
    assert "production_manager" in response.json()["message"]
    response = submit(api, [realistic_job(workingGroup="AP_TOP")])
    assert response.status_code == 403
    assert response.json()["message"] == "you are not a member of physics group 'AP_TOP', so you cannot submit as it"
    assert Job.objects.count() == 0


def test_get_description_has_every_jobspec_key_and_null_for_unknown_ids(db, site, django_assert_num_queries):
    owner = UserFactory(username="carol")
    jobs = [JobFactory(owner=owner, computing_site=site, task_id=42, sw_release="Atlas-27.0") for _ in range(3)]
    for job in jobs:
        JobFileFactory(job=job, type=FileType.INPUT, lfn=f"in{job.pk}.root", dataset="mc.in", fsize=10)
        JobFileFactory(job=job, type=FileType.LOG, lfn=f"{job.pk}.log.tgz", dataset="user.carol.log")
    wanted = [jobs[2].pk, 999999999, jobs[0].pk, jobs[1].pk]

    with django_assert_num_queries(2):  # the jobs (with their sites), then all their files
        response = APIClient().post(DESCRIBE, {"job_ids": wanted}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    described = body["data"]
    assert [item and item["PandaID"] for item in described] == [jobs[2].pk, None, jobs[0].pk, jobs[1].pk]

    first = described[0]
    assert set(first) == set(JOB_ATTRIBUTES) | {"Files"}
    assert (first["jobStatus"], first["jobName"], first["computingSite"], first["prodUserName"]) == (
        "defined", jobs[2].job_name, "BNL", "carol")  # fmt: skip
    assert (first["jediTaskID"], first["taskID"], first["AtlasRelease"], first["prodDBlock"]) == (
        42,
        42,
        "Atlas-27.0",
        "mc.in",
    )
    # Unset columns answer what PanDA answers: null, or 0 for its zero columns.
    assert (first["schedulerID"], first["cloud"], first["nEvents"], first["relocationFlag"]) == (None, None, 0, 0)
    assert [item["type"] for item in first["Files"]] == ["input", "log"]
    log = first["Files"][1]
    assert set(log) == set(SERVER_FILE_ATTRIBUTES)
    assert (log["PandaID"], log["lfn"], log["dataset"], log["fsize"], log["jediTaskID"], log["attemptNr"]) == (
        jobs[2].pk, f"{jobs[2].pk}.log.tgz", "user.carol.log", 0, 42, 1)  # fmt: skip


def test_datetimes_travel_as_panda_datetime_objects(db):
    created = datetime.datetime(2026, 11, 22, 3, 8, 28, 272493, tzinfo=datetime.UTC)
    job = JobFactory(creation_time=created, start_time=None)
    response = APIClient().post("/api/v1/job/get_description_incl_archive", {"job_ids": [job.pk]}, format="json")
    described = response.json()["data"][0]
    assert described["creationTime"] == {"__datetime__": "2026-11-22T03:08:28.272493"}
    assert described["startTime"] is None
    assert datetime.datetime.fromisoformat(described["modificationTime"]["__datetime__"]) <= timezone.now().replace(tzinfo=None)  # fmt: skip


def test_get_description_refuses_bad_id_lists(db):
    client = APIClient()
    too_many = client.post(DESCRIBE, {"job_ids": list(range(1, 10002))}, format="json")
    assert too_many.status_code == 400 and "at most 10000" in too_many.json()["message"]
    assert (
        client.post(DESCRIBE, {"job_ids": ["one"]}, format="json").json()["message"]
        == "job_ids must be a list of integers"
    )
    assert client.post(DESCRIBE, {}, format="json").json()["message"] == "job_ids is required"
    assert client.post(DESCRIBE, {"job_ids": [2**70, -1]}, format="json").json()["data"] == [None, None]
    assert client.get(DESCRIBE, {"job_ids": 1}).status_code == 405


def test_kill_answers_per_job_and_only_kills_what_the_user_may(api, user, db):
    bob = UserFactory(username="bob")
    mine = JobFactory(owner=user, status=JobStatus.ACTIVATED)
    running = JobFactory(owner=user, status=JobStatus.RUNNING)
    finished = JobFactory(owner=user, status=JobStatus.FINISHED)
    bobs = JobFactory(owner=bob, status=JobStatus.DEFINED)

    ids = [mine.pk, bobs.pk, 987654321, finished.pk, running.pk]
    response = api.post(KILL, {"job_ids": ids}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"success": True, "message": "", "data": [True, False, False, False, True]}

    mine.refresh_from_db(), bobs.refresh_from_db(), running.refresh_from_db(), finished.refresh_from_db()
    assert (mine.status, mine.task_buffer_error_diag) == (JobStatus.CANCELLED, "killed by alice")
    assert (running.status, running.command_to_pilot) == (JobStatus.RUNNING, "tobekilled")
    assert (bobs.status, finished.status) == (JobStatus.DEFINED, JobStatus.FINISHED)
    # Killing again: the job has ended, so nothing is killed.
    assert api.post(KILL, {"job_ids": [mine.pk]}, format="json").json()["data"] == [False]
    described = api.post(DESCRIBE, {"job_ids": [mine.pk]}, format="json").json()["data"][0]
    assert (described["jobStatus"], described["taskBufferErrorCode"]) == ("cancelled", 100)
    # bob may kill his own job.
    assert token_client(bob).post(KILL, {"job_ids": [bobs.pk]}, format="json").json()["data"] == [True]


@pytest.mark.parametrize(
    "role,label,killed",
    [("shifter", "user", True), ("production_manager", "managed", True), ("production_manager", "user", False)],
)
def test_kill_follows_the_kill_services_roles(db, role, label, killed):
    job = JobFactory(owner=UserFactory(username="dave"), prod_source_label=label, status=JobStatus.DEFINED)
    operator = grant_role(UserFactory(username=f"the_{role}"), role)
    assert token_client(operator).post(KILL, {"job_ids": [job.pk]}, format="json").json()["data"] == [killed]
    job.refresh_from_db()
    assert job.status == (JobStatus.CANCELLED if killed else JobStatus.DEFINED)


def test_kill_needs_credentials(db):
    job = JobFactory(status=JobStatus.DEFINED)
    response = APIClient().post(KILL, {"job_ids": [job.pk]}, format="json")
    assert response.status_code == 401 and response.json()["success"] is False
    job.refresh_from_db()
    assert job.status == JobStatus.DEFINED


def test_is_alive(db):
    response = APIClient().get("/api/v1/system/is_alive", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"success": True, "message": "", "data": None}
    assert APIClient().post("/api/v1/system/is_alive", {}, format="json").status_code == 405


def test_set_debug_mode_turns_our_debug_mode_on_and_off(api, user, db):
    job = JobFactory(owner=user, status=JobStatus.RUNNING)
    answer = api.post("/api/v1/job/set_debug_mode", {"job_id": job.pk, "mode": True}, format="json").json()
    assert answer == {"success": True, "message": "", "data": f"debug mode on for job {job.pk}"}
    job.refresh_from_db()
    assert job.debug_mode is True
    api.post("/api/v1/job/set_debug_mode", {"job_id": job.pk, "mode": False}, format="json")
    job.refresh_from_db()
    assert job.debug_mode is False


def test_set_debug_mode_refusals_change_nothing(api, user, db):
    others = JobFactory(owner=UserFactory(username="eve"), status=JobStatus.RUNNING)
    response = api.post("/api/v1/job/set_debug_mode", {"job_id": others.pk, "mode": True}, format="json")
    assert response.status_code == 403 and response.json()["success"] is False
    response = api.post("/api/v1/job/set_debug_mode", {"job_id": others.pk, "mode": "yes"}, format="json")
    assert response.status_code == 400 and response.json()["message"] == "mode must be true or false"
    response = APIClient().post("/api/v1/job/set_debug_mode", {"job_id": others.pk, "mode": True}, format="json")
    assert response.status_code == 401
    others.refresh_from_db()
    assert others.debug_mode is False

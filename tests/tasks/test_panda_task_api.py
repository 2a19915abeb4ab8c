"""PanDA's task functions (/api/v1/task/*) for the unchanged panda-client: the JEDI task parameter map
translated onto our task submission, the commands onto our task actions, and the answers' shapes."""

import re

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from datasets.services import catalog
from jobs.choices import JobStatus
from jobs.models import Job
from jobs.services import state
from pandamon import roles
from pandamon.models import PhysicsGroup
from tasks import panda_taskparams
from tasks.choices import TaskStatus, TaskType
from tasks.models import Task, TaskInput
from tests.factories import SiteFactory, UserFactory, grant_role

pytestmark = pytest.mark.django_db
INPUT = "mc11.007216.singlepart_mu18.evgen.v1"
OUTPUT = "user.alice.jeditest.v1"
API = "/api/v1/task/"


@pytest.fixture
def people(db):
    made = {name: UserFactory(username=name) for name in ("alice", "bob")}
    made["prodmgr"] = grant_role(UserFactory(username="prodmgr"), roles.PRODUCTION_MANAGER)
    made["ddmops"] = grant_role(UserFactory(username="ddmops"), roles.DATA_OPERATOR)
    PhysicsGroup.objects.create(name="groupA").members.add(made["alice"], made["prodmgr"])
    SiteFactory(name="TEST_PQ")
    add_input_files(made, 3)
    return made


def add_input_files(people, n, start=1):
    files = [{"lfn": f"{INPUT}._{i:05d}.pool.root", "fsize": 1000 + i, "adler32": "0000abcd"}
             for i in range(start, start + n)]  # fmt: skip
    if start == 1:
        catalog.register_new_dataset(user=people["ddmops"], name=INPUT, files=files)
    else:
        catalog.add_files_to_dataset(user=people["ddmops"], name=INPUT, files=files)


def client_for(user=None):
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {Token.objects.get_or_create(user=user)[0].key}")
    return client


def jedi_map(output=OUTPUT, **extra):
    """panda-client's example_task.py, reading a real input dataset instead of noInput/pfnList."""
    params = {
        "nFilesPerJob": 1, "taskName": output, "userName": output.split(".")[1], "vo": "wlcg",
        "taskPriority": 900, "architecture": "", "transUses": "", "transHome": None, "transPath": "executable",
        "processingType": "step1", "prodSourceLabel": "user", "taskType": "anal", "workingGroup": "groupA",
        "cloud": None, "site": "TEST_PQ",
        "log": {"dataset": f"{output}.log", "type": "template", "param_type": "log", "token": "local",
                "destination": "local", "value": f"{output}.log.${{SN}}.log.tgz"},
        "jobParameters": [
            {"type": "template", "param_type": "input", "value": '-i "${IN/T}"', "dataset": INPUT},
            {"type": "constant", "value": "ecmEnergy=8000 runNumber=12345"},
            {"type": "template", "param_type": "output", "token": "local", "destination": "local",
             "value": f"outputEVNTFile={output}.${{SN}}.root", "dataset": output, "offset": 1000},
            {"type": "constant", "value": "aaaa"},
        ],
    }  # fmt: skip
    params.update(extra)
    return params


def submit(client, params, **body):
    return client.post(API + "submit", {"task_parameters": params, "parent_tid": None, **body}, format="json")


def command(client, name, task_id, **body):
    return client.post(API + name, {"task_id": task_id, **body}, format="json")


def nothing_written():
    return not Task.objects.exists() and not Job.objects.exists() and not TaskInput.objects.exists()


def submitted_task(people, user="alice", **extra):
    response = submit(client_for(people[user]), jedi_map(**extra))
    assert response.status_code == 200, response.content
    return Task.objects.get(pk=response.json()["data"])


# -- task/submit -------------------------------------------------------------------------------------


def test_a_jedi_map_defines_the_task_and_makes_its_jobs(people):
    response = submit(client_for(people["alice"]), jedi_map())
    assert response.status_code == 200, response.content
    body = response.json()
    task = Task.objects.get()
    assert body["success"] is True and body["data"] == task.task_id
    # What prun does with the answer: the task ID from the message.
    assert int(re.search(r"jediTaskID=(\d+)", body["message"]).group(1)) == task.task_id
    assert body["message"].startswith(f"succeeded. new jediTaskID={task.task_id} (3 job(s) for 3 input file(s))")
    assert "${IN/T} gives jobs their input files as a comma-separated list" in body["message"]
    assert f"logs are stored with the outputs in {OUTPUT}, not in {OUTPUT}.log" in body["message"]
    assert "file names are this server's" in body["message"] and "destination and token are not used" in body["message"]

    assert (task.type, task.status, task.owner_name, task.name) == (TaskType.ANALYSIS, "ready", "alice", OUTPUT)
    assert (task.input_dataset, task.output_dataset, task.site) == (INPUT, OUTPUT, "TEST_PQ")
    assert (task.transformation, task.n_files_per_job, task.priority) == ("executable", 1, 900)
    assert (task.vo, task.working_group, task.sw_release) == ("wlcg", "groupA", "")
    assert task.job_parameters == '-i "${IN}" ecmEnergy=8000 runNumber=12345 outputEVNTFile=${OUT} aaaa'
    jobs = list(Job.objects.filter(task_id=task.task_id).order_by("pandaid"))
    assert len(jobs) == 3 and {job.prod_source_label for job in jobs} == {"user"}
    assert jobs[0].job_parameters == (f'-i "{INPUT}._00001.pool.root" ecmEnergy=8000 runNumber=12345 '
                                      f"outputEVNTFile={OUTPUT}.root._000001.root aaaa")  # fmt: skip


def test_submitting_the_same_output_again_processes_only_new_files(people):
    alice = client_for(people["alice"])
    task = submitted_task(people)
    again = submit(alice, jedi_map())
    assert again.status_code == 200 and again.json()["data"] == task.task_id
    assert again.json()["message"].startswith(f"jediTaskID={task.task_id} exists for {OUTPUT}: 0 new input file(s)")
    add_input_files(people, 2, start=10)
    third = submit(alice, jedi_map()).json()
    assert "2 new input file(s) in 2 new job(s)" in third["message"]
    assert Task.objects.count() == 1 and Job.objects.count() == 5


def test_a_production_task_needs_the_production_manager_role(people):
    params = jedi_map(output="mc11.007216.singlepart_mu18.simul.v1", userName=None, prodSourceLabel="managed",
                      taskPriority=1500)  # fmt: skip
    refused = submit(client_for(people["alice"]), params)
    assert refused.status_code == 403 and refused.json()["data"] == 4
    assert "production_manager role" in refused.json()["message"] and nothing_written()
    done = submit(client_for(people["prodmgr"]), {**params, "prodSourceLabel": "test"})
    assert done.status_code == 200, done.content
    task = Task.objects.get()
    assert (task.type, task.prod_source_label, task.priority) == (TaskType.PRODUCTION, "managed", 1500)
    assert "prodSourceLabel test makes a production task" in done.json()["message"]


def test_anonymous_submission_is_refused(people):
    response = submit(client_for(), jedi_map())
    assert response.status_code == 401 and response.json()["success"] is False
    assert "PANDA_AUTH_ID_TOKEN" in response.json()["message"] and nothing_written()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"noInput": True, "pfnList": ["file1", "file2"]}, "noInput"),
        ({"mergeOutput": True}, "mergeOutput"),
        ({"nFiles": 2}, "nFiles"),
        ({"architecture": "power9"}, "architecture power9"),
        ({"cloud": "NA"}, "cloud NA"),
        ({"coreCount": 8}, "coreCount 8"),
        ({"colour": "red"}, "unknown task parameter colour"),
        ({"prodSourceLabel": "ptest"}, "prodSourceLabel ptest"),
        ({"site": "TEST_PQ,OTHER"}, "site TEST_PQ,OTHER"),
        ({"nFilesPerJob": "many"}, "nFilesPerJob: A valid integer is required"),
        ({"nGBPerJob": "MAX"}, "nGBPerJob: give a number"),
        ({"taskPriority": 900, "currentPriority": 800}, "taskPriority and currentPriority disagree"),
        ({"taskPriority": 5000}, "priority: an analysis task may lower its priority"),
        ({"log": None, "jobParameters": [{"type": "constant", "value": "${IN}"}]}, "no input template"),
        ({"jobParameters": [{"type": "template", "param_type": "input", "dataset": INPUT, "value": "${IN}",
                             "exclude": r"\.log\.tgz$"}]}, "jobParameters[0].exclude"),
        ({"jobParameters": [{"type": "template", "param_type": "input", "dataset": INPUT, "value": "${IN}"},
                            {"type": "constant", "value": "--seed=${RNDMSEED}"}]}, "placeholder ${RNDMSEED}"),
        ({"jobParameters": [{"type": "template", "param_type": "input", "dataset": INPUT, "value": "${IN}"},
                            {"type": "template", "param_type": "input", "dataset": "other", "value": "${IN}"}]},
         "jobParameters[1]: a second input template"),
        ({"jobParameters": [{"type": "template", "param_type": "input", "dataset": "DBR_LATEST",
                             "value": "--dbrFile=${DBR}"}]}, "input stream DBR"),
        ({"jobParameters": [{"type": "template", "param_type": "input", "dataset": INPUT, "value": "${IN}",
                             "hidden": "yes"}]}, "jobParameters[0].hidden: give true or false"),
        ({"jobParameters": "${IN}"}, "jobParameters: give a list"),
        ({"dsForIN": "other.dataset"}, "dsForIN other.dataset"),
        ({"transPath": None}, "transPath: required"),
        ({"prodSourceLabel": ["user"]}, "prodSourceLabel ['user']"),
        ({"ramCountUnit": ["MB"]}, "ramCountUnit ['MB']"),
    ],
)  # fmt: skip
def test_what_the_server_cannot_do_is_a_400_naming_the_key_and_writes_nothing(people, change, named):
    response = submit(client_for(people["alice"]), jedi_map(**change))
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["success"] is False and body["data"] == 4 and named in body["message"]
    assert nothing_written()


def test_other_refusals_keep_their_status_and_write_nothing(people):
    alice = client_for(people["alice"])
    response = submit(alice, jedi_map(userName="bob"))
    assert response.status_code == 403 and "userName bob" in response.json()["message"]
    response = submit(alice, jedi_map(output="user.bob.stolen", userName="alice"))
    assert response.status_code == 403 and "user.alice.*" in response.json()["message"]
    response = submit(alice, jedi_map(site="NOWHERE"))
    assert response.status_code == 400 and "NOWHERE" in response.json()["message"]
    response = submit(alice, jedi_map(), parent_tid=12)
    assert response.status_code == 400 and "parent_tid" in response.json()["message"]
    response = submit(alice, "not a map")
    assert response.status_code == 400 and "task_parameters" in response.json()["message"]
    assert nothing_written()
    name_taken = submitted_task(people, output="user.alice.first")
    response = submit(alice, jedi_map(output="user.alice.second", taskName=name_taken.name))
    assert response.status_code == 409 and response.json()["data"] == 2


# -- reads ---------------------------------------------------------------------------------------------


def test_status_job_ids_and_their_refusals(people):
    task = submitted_task(people)
    anonymous = client_for()
    response = anonymous.get(API + "get_status", {"task_id": task.task_id})
    assert response.json() == {"success": True, "message": "", "data": "ready"}
    response = anonymous.get(API + "get_job_ids", {"task_id": task.task_id})
    assert response.json()["data"] == sorted(Job.objects.values_list("pandaid", flat=True))
    response = anonymous.get(API + "get_status", {"task_id": task.task_id + 1})
    assert response.status_code == 404 and response.json()["data"] == 2
    response = anonymous.get(API + "get_job_ids", {"task_id": "twelve"})
    assert response.status_code == 400 and response.json()["data"] == 101
    assert anonymous.post(API + "get_status", {"task_id": task.task_id}, format="json").status_code == 405


def test_task_parameters_round_trip_to_the_same_definition(people):
    task = submitted_task(people, nFilesPerJob=None, nGBPerJob=2, maxWalltime=2, excludedSite="CERN, RAL",
                          ramCount=3000, ramCountUnit="MBPerCore", transUses="Atlas-17.2.0")  # fmt: skip
    response = client_for().get(API + "get_task_parameters", {"task_id": task.task_id})
    params = response.json()["data"]
    assert (params["taskName"], params["userName"], params["prodSourceLabel"]) == (OUTPUT, "alice", "user")
    assert (params["nGBPerJob"], params["walltime"], params["excludedSite"]) == (2, 7200, ["CERN", "RAL"])
    spec = panda_taskparams.to_spec(params, user=people["alice"]).spec
    assert spec == {name: getattr(task, name) for name in spec}
    assert set(spec) >= {"name", "transformation", "job_parameters", "input_dataset", "output_dataset",
                         "max_size_per_job_mb", "walltime_s", "excluded_sites", "ram_mb", "sw_release"}  # fmt: skip
    again = submit(client_for(people["alice"]), params)
    assert again.status_code == 200 and again.json()["data"] == task.task_id  # the same task: nothing new


# -- commands --------------------------------------------------------------------------------------------


def test_kill_answers_jedi_codes_and_only_the_owner_may(people):
    task = submitted_task(people)
    refused = command(client_for(people["bob"]), "kill", task.task_id)
    assert refused.status_code == 403 and refused.json()["data"] == 3
    assert command(client_for(), "kill", task.task_id).json()["data"] == 100
    assert command(client_for(people["bob"]), "kill", task.task_id + 1).json()["data"] == 2
    task.refresh_from_db()
    assert task.status == TaskStatus.READY

    done = command(client_for(people["alice"]), "kill", task.task_id, broadcast=True)
    assert done.status_code == 200
    assert done.json() == {"success": True, "data": 0,
                           "message": f"task {task.task_id} aborted: 3 queued job(s) cancelled, "
                                      f"0 running job(s) told to stop"}  # fmt: skip
    task.refresh_from_db()
    assert task.status == TaskStatus.ABORTED
    again = command(client_for(people["alice"]), "kill", task.task_id)
    assert again.status_code == 409 and again.json()["data"] == 4


def test_pause_resume_and_retry(people):
    task = submitted_task(people)
    alice, bob = client_for(people["alice"]), client_for(people["bob"])
    assert command(bob, "pause", task.task_id).json()["data"] == 3
    assert command(alice, "pause", task.task_id).json()["data"] == 0
    assert Task.objects.get(pk=task.pk).status == TaskStatus.PAUSED
    assert command(alice, "pause", task.task_id).status_code == 409
    resumed = command(alice, "resume", task.task_id).json()
    assert resumed["data"] == 0 and resumed["message"] == f"task {task.task_id} resumed"
    assert Task.objects.get(pk=task.pk).status != TaskStatus.PAUSED

    job = Job.objects.filter(task_id=task.task_id).order_by("pandaid").first()
    state.transition(job, JobStatus.FAILED, actor="test")
    assert command(bob, "retry", task.task_id).json()["data"] == 3
    refused = command(alice, "retry", task.task_id, new_parameters={"nFilesPerJob": 2})
    assert refused.status_code == 400 and "new_parameters" in refused.json()["message"]
    retried = command(alice, "retry", task.task_id).json()
    assert (
        retried["data"] == 0 and retried["message"] == f"1 failed job(s) of task {task.task_id} retried as new attempts"
    )
    assert Job.objects.filter(parent_id=job.pk).count() == 1


@pytest.mark.parametrize("name", ["finish", "reactivate"])
def test_finish_and_reactivate_are_refused_as_unsupported(people, name):
    task = submitted_task(people)
    response = command(client_for(people["alice"]), name, task.task_id)
    assert response.status_code == 400 and response.json()["data"] == 1
    assert f"task/{name} is not supported here" in response.json()["message"]
    assert command(client_for(), name, task.task_id).status_code == 401
    task.refresh_from_db()
    assert task.status == TaskStatus.READY


# -- the translation itself ------------------------------------------------------------------------------


def test_padding_hidden_entries_quotes_and_placeholders(people):
    params = jedi_map(jobParameters=[
        {"type": "constant", "value": '-p "', "padding": False},
        {"type": "constant", "value": "run.sh ${SN/P} ${FIRSTEVENT} ${SKIPEVENTS} ${MAXEVENTS}"},
        {"type": "constant", "value": '"'},
        {"type": "constant", "value": "__delimiter__", "hidden": True},
        {"type": "template", "param_type": "input", "dataset": f"{INPUT}/", "value": "--in=${IN/L}",
         "expand": True},
        {"type": "template", "param_type": "output", "dataset": f"{OUTPUT}/", "container": f"{OUTPUT}/",
         "value": "--out='out.${SN}.root'", "hidden": False},
        {"type": "constant", "value": "--n=${SN}"},
    ])  # fmt: skip
    result = panda_taskparams.to_spec(params, user=people["alice"])
    assert result.spec["job_parameters"] == ('-p "run.sh ${SN} ${FIRSTEVENT} ${SKIPEVENTS} ${MAXEVENTS} " '
                                             "--in=${IN} --out='${OUT}' --n=${SN}")  # fmt: skip
    assert (result.spec["input_dataset"], result.spec["output_dataset"]) == (INPUT, OUTPUT)
    assert "${SN} is zero-padded to six digits here (000001), like ${SN/P}" in result.notes
    assert result.task_type == TaskType.ANALYSIS


def test_ignored_keys_are_accepted_and_empty_refused_keys_ask_for_nothing(people):
    extra = {key: "something" for key in panda_taskparams.IGNORED}
    extra.update(noInput=False, mergeOutput=False, nFiles=0, pfnList=[], waitInput=None, cloud="WORLD")
    result = panda_taskparams.to_spec(jedi_map(**extra), user=people["alice"])
    assert result.spec["name"] == OUTPUT


def test_odd_values_are_4xx_never_500(people):
    alice = client_for(people["alice"])
    keys = ["taskName", "userName", "prodSourceLabel", "architecture", "cloud", "coreCount", "ramCountUnit",
            "nGBPerJob", "maxWalltime", "excludedSite", "site", "nFilesPerJob", "log", "jobParameters", "dsForIN",
            "mergeOutput", "walltimeUnit", "followInput"]  # fmt: skip
    for key in keys:
        for value in ([], {}, [["x"]], {"a": 1}, 1.5, -3, True, "x" * 300, float("1e300")):
            response = submit(alice, jedi_map(**{key: value}))
            assert response.status_code < 500, (key, value, response.content)
            assert response.json()["success"] is (response.status_code == 200), (key, value)
    entry = {"type": "template", "param_type": "input", "dataset": INPUT, "value": "${IN}"}
    for key in ("value", "dataset", "param_type", "type", "padding", "container", "expand", "offset"):
        for value in ([], {}, 7, None, "${", "a,b"):
            response = submit(alice, jedi_map(jobParameters=[{**entry, key: value}]))
            assert response.status_code < 500, (key, value, response.content)

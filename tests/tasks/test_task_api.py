"""The tasks REST API: list and filters, detail, analysis and production submission, inputs, refusals."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from datasets.services import catalog
from jobs.choices import JobStatus
from jobs.models import Job
from jobs.services import state
from pandamon import roles
from pandamon.models import PhysicsGroup
from tasks.api import TaskSpecSerializer
from tasks.models import JobSet, Task, TaskInput, TaskStatusLog
from tasks.services import creation, rollup
from tests.factories import SiteFactory, UserFactory, grant_role

pytestmark = pytest.mark.django_db
INPUT = "data11.00180164.physics_Muons.AOD"
OUTPUT = "user.alice.zmumu.v1"


@pytest.fixture
def people(db):
    made = {name: UserFactory(username=name) for name in ("alice", "bob")}
    made["prodmgr"] = grant_role(UserFactory(username="prodmgr"), roles.PRODUCTION_MANAGER)
    made["ddmops"] = grant_role(UserFactory(username="ddmops"), roles.DATA_OPERATOR)
    return made


def client_for(user=None):
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.fixture
def alice(people):
    return client_for(people["alice"])


def input_dataset(people, n, start=1, events=None, name=INPUT):
    files = [{"lfn": f"{name}._{i:05d}.pool.root", "fsize": 1000 + i, "adler32": "0000abcd", "events": events}
             for i in range(start, start + n)]  # fmt: skip
    if start == 1:
        catalog.register_new_dataset(user=people["ddmops"], name=name, files=files)
    else:
        catalog.add_files_to_dataset(user=people["ddmops"], name=name, files=files)
    return [f["lfn"] for f in files]


def analysis_spec(**extra):
    return {"input_dataset": INPUT, "output_dataset": OUTPUT, "transformation": "#!/bin/sh\necho $1\n",
            "job_parameters": "${IN} ${OUT}", "n_files_per_job": 2, **extra}  # fmt: skip


def finish(pandaid):
    job = Job.objects.get(pk=pandaid)
    for new in (JobStatus.ACTIVATED, JobStatus.SENT, JobStatus.RUNNING, JobStatus.HOLDING, JobStatus.FINISHED):
        state.transition(job, new, actor="test")


def nothing_written():
    return not Task.objects.exists() and not Job.objects.exists() and not TaskInput.objects.exists()


# -- submission --------------------------------------------------------------------------------------


def test_analysis_submission_answers_the_task_and_its_new_jobs(people, alice):
    input_dataset(people, 5)
    response = alice.post("/api/v1/tasks/", analysis_spec(), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    task = Task.objects.get()
    assert body["resubmitted"] is False and body["new_files"] == 5
    assert body["pandaids"] == sorted(Job.objects.filter(task_id=task.pk).values_list("pandaid", flat=True))
    assert len(body["pandaids"]) == 3
    assert body["task"]["task_id"] == task.pk and body["task"]["status"] == "ready"
    assert body["task"]["owner"] == "alice" and body["task"]["name"] == OUTPUT
    assert body["task"]["url"] == f"http://testserver/tasks/{task.pk}/"
    assert body["message"] == f"task {task.pk} defined: 3 job(s) for 5 input file(s)"


def test_resubmission_answers_200_with_only_the_new_jobs(people, alice):
    input_dataset(people, 4)
    first = alice.post("/api/v1/tasks/", analysis_spec(), format="json").json()
    again = alice.post("/api/v1/tasks/", analysis_spec(), format="json")
    assert again.status_code == 200
    assert again.json()["pandaids"] == [] and again.json()["new_files"] == 0
    assert "no new input files: nothing to do" in again.json()["message"]

    new_lfns = input_dataset(people, 3, start=10)
    third = alice.post("/api/v1/tasks/", analysis_spec(n_files_per_job=5, job_parameters="${IN}"), format="json")
    body = third.json()
    assert third.status_code == 200 and body["resubmitted"] is True
    assert body["new_files"] == 3 and len(body["pandaids"]) == 2  # the task's own rule: 2 files per job
    assert set(body["pandaids"]).isdisjoint(first["pandaids"])
    assert body["ignored_fields"] == ["job_parameters", "n_files_per_job"]
    assert "3 new input file(s) in 2 new job(s)" in body["message"] and "ignored" in body["message"]
    held = TaskInput.objects.filter(job_id__in=body["pandaids"]).values_list("lfn", flat=True)
    assert sorted(held) == new_lfns
    assert Task.objects.count() == 1 and TaskInput.objects.count() == 7


def test_production_tasks_need_the_production_manager_role(people, alice):
    input_dataset(people, 2, events=250)
    spec = {"name": "mc11.007216.singlepart_mu18.recon.v11000303", "input_dataset": INPUT,
            "output_dataset": "mc11.007216.singlepart_mu18.recon.v11000303", "output_formats": "ESD.AOD",
            "transformation": "csc.reco.trf", "n_events_per_job": 100, "priority": 1500,
            "job_parameters": "${IN} ${OUT} skip=${SKIPEVENTS} max=${MAXEVENTS}"}  # fmt: skip
    refused = alice.post("/api/v1/tasks/production/", spec, format="json")
    assert refused.status_code == 403 and "production_manager role" in refused.json()["error"]
    # The role is checked before the input: a refusal does not reveal what else is wrong.
    refused = alice.post("/api/v1/tasks/production/", {"colour": "red"}, format="json")
    assert refused.status_code == 403
    assert client_for().post("/api/v1/tasks/production/", spec, format="json").status_code == 401
    assert nothing_written()

    made = client_for(people["prodmgr"]).post("/api/v1/tasks/production/", spec, format="json")
    assert made.status_code == 201, made.content
    body = made.json()
    assert body["task"]["type"] == "production" and len(body["pandaids"]) == 6 and body["new_files"] == 2
    assert set(Job.objects.values_list("prod_source_label", flat=True)) == {"managed"}


def test_analysis_output_must_be_the_submitters_own(people, alice):
    input_dataset(people, 2)
    alice.post("/api/v1/tasks/", analysis_spec(), format="json")
    before = (Task.objects.count(), Job.objects.count())
    bob = client_for(people["bob"])
    # bob may neither write user.alice.* nor add files to alice's task through it
    refused = bob.post("/api/v1/tasks/", analysis_spec(), format="json")
    assert refused.status_code == 403 and "user.bob.*" in refused.json()["error"]
    # a production manager submitting an analysis task is a user like any other
    refused = client_for(people["prodmgr"]).post("/api/v1/tasks/", analysis_spec(), format="json")
    assert refused.status_code == 403
    assert client_for().post("/api/v1/tasks/", analysis_spec(), format="json").status_code == 401
    assert (Task.objects.count(), Job.objects.count()) == before
    # reading someone else's task is allowed, as for jobs
    assert bob.get(f"/api/v1/tasks/{Task.objects.get().pk}/").status_code == 200


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"colour": "red"}, 400, "unknown task field colour"),
        ({"n_events_per_job": 10}, 400, "give one splitting rule, not n_files_per_job and n_events_per_job"),
        ({"n_files_per_job": 0}, 400, "n_files_per_job: Ensure this value is greater than or equal to 1"),
        ({"n_files_per_job": "many"}, 400, "n_files_per_job: A valid integer is required"),
        ({"job_parameters": "${IN} ${FOO}"}, 400, "unknown placeholder ${FOO}"),
        ({"transformation": None}, 400, "transformation: required"),
        ({"output_dataset": "user.alice." + "x" * 250}, 400, "output_dataset: Ensure this field has no more"),
        ({"output_formats": "ESD AOD"}, 400, "output_formats: This value does not match"),
        ({"excluded_sites": "BNL"}, 400, "excluded_sites: Expected a list"),
        ({"max_attempts": 0}, 400, "max_attempts"),
        ({"input_dataset": "data11.nothing.here"}, 404, "no dataset named data11.nothing.here"),
        ({"site": "NOWHERE"}, 400, "unknown site 'NOWHERE'"),
        ({"n_events_per_job": 10, "n_files_per_job": None}, 400, "give events_per_file"),
    ],
)
def test_bad_input_is_a_clear_4xx_and_changes_nothing(people, alice, change, status, message):
    input_dataset(people, 3)
    spec = {name: value for name, value in {**analysis_spec(), **change}.items()}
    response = alice.post("/api/v1/tasks/", spec, format="json")
    assert response.status_code == status, response.content
    assert message in response.json()["error"]
    assert nothing_written()


def test_a_body_that_is_not_an_object_is_refused(people, alice):
    assert alice.post("/api/v1/tasks/", [analysis_spec()], format="json").json()["error"] == (
        "give the task as a JSON object"
    )
    response = alice.post("/api/v1/tasks/", b"{not json", content_type="application/json")
    assert response.status_code == 400 and "JSON parse error" in response.json()["error"]


def test_the_api_spec_fields_are_the_services(db):
    assert set(TaskSpecSerializer().fields) == set(creation.SPEC_FIELDS)


# -- reading -----------------------------------------------------------------------------------------


def make_tasks(people):
    input_dataset(people, 4)
    input_dataset(people, 2, name="mc11.005200.T1_McAtNlo_Jimmy.AOD")
    alice_task, _ = creation.submit_task(user=people["alice"], spec=analysis_spec(), task_type="analysis")
    bob_spec = analysis_spec(output_dataset="user.bob.ttbar.v2", input_dataset="mc11.005200.T1_McAtNlo_Jimmy.AOD",
                             working_group="phys-top")  # fmt: skip
    PhysicsGroup.objects.create(name="phys-top").members.add(people["bob"])
    bob_task, _ = creation.submit_task(user=people["bob"], spec=bob_spec, task_type="analysis")
    return alice_task, bob_task


def ids(response):
    assert response.status_code == 200, response.content
    return [row["task_id"] for row in response.json()["results"]]


def test_the_list_filters_on_the_portal_grammar_newest_first(people, alice):
    alice_task, bob_task = make_tasks(people)
    anyone = client_for()
    assert ids(anyone.get("/api/v1/tasks/")) == [bob_task.pk, alice_task.pk]
    assert ids(anyone.get("/api/v1/tasks/", {"username": "alice"})) == [alice_task.pk]
    assert ids(anyone.get("/api/v1/tasks/", {"taskname": "user.bob.*"})) == [bob_task.pk]
    assert ids(anyone.get("/api/v1/tasks/", {"taskname": "*zmumu*"})) == [alice_task.pk]
    assert ids(anyone.get("/api/v1/tasks/", {"status": "ready", "tasktype": "analysis"})) == [bob_task.pk,
                                                                                             alice_task.pk]  # fmt: skip
    assert ids(anyone.get("/api/v1/tasks/", {"status": "!ready"})) == []
    assert ids(anyone.get("/api/v1/tasks/", {"workinggroup": "phys-*"})) == [bob_task.pk]
    assert ids(anyone.get("/api/v1/tasks/", {"taskid": f"{alice_task.pk}:{alice_task.pk}"})) == [alice_task.pk]
    assert ids(alice.get("/api/v1/tasks/", {"mine": 1})) == [alice_task.pk]
    page = anyone.get("/api/v1/tasks/", {"limit": 1}).json()
    assert [row["task_id"] for row in page["results"]] == [bob_task.pk]
    assert [row["task_id"] for row in anyone.get(page["next"]).json()["results"]] == [alice_task.pk]


def test_the_list_window_is_on_the_modification_time(people):
    alice_task, bob_task = make_tasks(people)
    Task.objects.filter(pk=alice_task.pk).update(modified_at="2011-01-01T00:00:00Z")
    anyone = client_for()
    assert ids(anyone.get("/api/v1/tasks/")) == [bob_task.pk]  # the default window: the last 7 days
    assert ids(anyone.get("/api/v1/tasks/", {"date_from": "2010-12-31", "date_to": "2011-01-02"})) == [alice_task.pk]
    assert ids(anyone.get("/api/v1/tasks/", {"taskid": alice_task.pk})) == [alice_task.pk]  # an id lifts it


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"status": "runing"}, "status"),
        ({"tasktype": "anal"}, "tasktype"),
        ({"colour": "red"}, "unknown parameter colour"),
        ({"days": "soon"}, "days must be a number"),
        ({"taskid": "x"}, "is not an integer"),
    ],
)
def test_bad_filters_are_400s_naming_the_parameter(db, params, message):
    response = client_for().get("/api/v1/tasks/", params)
    assert response.status_code == 400 and message in response.json()["error"]


def test_mine_needs_a_login(db):
    response = client_for().get("/api/v1/tasks/", {"mine": 1})
    assert response.status_code == 403 and "log in" in response.json()["error"]


def test_detail_has_counters_jobs_by_state_history_and_jobsets(people, alice):
    input_dataset(people, 4)
    submitted = alice.post("/api/v1/tasks/", analysis_spec(), format="json").json()
    first, second = submitted["pandaids"]
    finish(first)
    rollup.roll_up(lag_seconds=0)
    task = Task.objects.get()
    detail = client_for().get(f"/api/v1/tasks/{task.pk}/").json()
    assert (detail["files_total"], detail["files_done"], detail["files_failed"]) == (4, 2, 0)
    assert detail["jobs_by_state"] == {"defined": 1, "finished": 1}
    assert detail["status"] == "running" and detail["owner"] == "alice"
    assert [(c["old_status"], c["new_status"]) for c in detail["status_log"]] == [
        ("", "defined"), ("defined", "ready"), ("ready", "running")]  # fmt: skip
    jobset = JobSet.objects.get()
    assert detail["jobsets"] == [
        {"jobset_id": jobset.pk, "n_jobs": 2, "created_at": detail["jobsets"][0]["created_at"]}
    ]
    assert detail["transformation"] == "#!/bin/sh\necho $1\n" and detail["n_files_per_job"] == 2
    assert detail["url"].endswith(f"/tasks/{task.pk}/")
    missing = client_for().get("/api/v1/tasks/999999/")
    assert missing.status_code == 404 and missing.json()["error"] == "no task 999999"
    assert TaskStatusLog.objects.filter(task=task).count() == 3


def test_inputs_are_paged_and_filtered_by_status(people, alice):
    lfns = input_dataset(people, 5)
    submitted = alice.post("/api/v1/tasks/", analysis_spec(), format="json").json()
    task = Task.objects.get()
    finish(submitted["pandaids"][0])
    rollup.roll_up(lag_seconds=0)
    anyone = client_for()
    page = anyone.get(f"/api/v1/tasks/{task.pk}/inputs/", {"limit": 2}).json()
    assert [row["lfn"] for row in page["results"]] == lfns[:2]
    assert page["results"][0]["pandaid"] == submitted["pandaids"][0] and page["results"][0]["status"] == "done"
    rest = anyone.get(page["next"]).json()
    assert [row["lfn"] for row in rest["results"]] == lfns[2:4]
    done = anyone.get(f"/api/v1/tasks/{task.pk}/inputs/", {"status": "done"}).json()["results"]
    assert [row["lfn"] for row in done] == lfns[:2]
    assigned = anyone.get(f"/api/v1/tasks/{task.pk}/inputs/", {"status": "!done", "lfn": "*00005*"}).json()
    assert [row["lfn"] for row in assigned["results"]] == lfns[4:]
    bad = anyone.get(f"/api/v1/tasks/{task.pk}/inputs/", {"status": "finished"})
    assert bad.status_code == 400 and "status" in bad.json()["error"]
    assert anyone.get("/api/v1/tasks/999999/inputs/").status_code == 404


def test_a_task_over_an_empty_input_is_refused_and_nothing_is_kept(people, alice):
    catalog.register_new_dataset(user=people["ddmops"], name=INPUT, files=[])
    response = alice.post("/api/v1/tasks/", analysis_spec(), format="json")
    assert response.status_code == 400
    assert response.json()["error"] == f"input {INPUT} has no files to process"
    assert not Task.objects.exists()  # the output dataset name stays free for a later submission


def test_a_pinned_site_must_exist_and_jobs_go_there(people, alice):
    input_dataset(people, 2)
    SiteFactory(name="BNL")
    response = alice.post("/api/v1/tasks/", analysis_spec(site="BNL"), format="json")
    assert response.status_code == 201
    assert set(Job.objects.values_list("computing_site__name", flat=True)) == {"BNL"}

"""Tasks: definition, splitting into real jobs, process-only-new-files, roll-up from the job state log."""

import pytest

from datasets.models import Dataset
from datasets.services import catalog
from jobs.choices import JobStatus
from jobs.models import Job, JobFile
from jobs.services import retry, state
from pandamon import roles
from pandamon.errors import Conflict, InvalidInput, PermissionDenied
from tasks.choices import InputStatus, TaskStatus, TaskType
from tasks.models import Task, TaskInput, TaskStatusLog
from tasks.services import rollup
from tasks.services.creation import submit_task
from tests.factories import SiteFactory, UserFactory, grant_role

pytestmark = pytest.mark.django_db
INPUT = "mc11.007216.singlepart_mu18.digit.v11000302"


@pytest.fixture
def operator(db):
    user = UserFactory(username="ddmops")
    grant_role(user, roles.DATA_OPERATOR)
    return user


@pytest.fixture
def alice(db):
    return UserFactory(username="alice")


def input_dataset(operator, n, events=None, name=INPUT):
    files = [{"lfn": f"{name}._{i:05d}.pool.root", "fsize": 1000 + i, "adler32": "0000abcd", "events": events}
             for i in range(1, n + 1)]  # fmt: skip
    catalog.register_new_dataset(user=operator, name=name, files=files)
    return [f["lfn"] for f in files]


def analysis(alice, **extra):
    spec = {"input_dataset": INPUT, "output_dataset": "user.alice.reco.v1", "transformation": "run.sh",
            "job_parameters": "${IN} ${OUT}", "n_files_per_job": 2, **extra}  # fmt: skip
    return submit_task(user=alice, spec=spec, task_type=TaskType.ANALYSIS)


def finish(pandaid, new=JobStatus.FINISHED):
    job = Job.objects.get(pk=pandaid)
    state.transition(job, new, actor="test", **({"job_dispatcher_error_code": 0} if new else {}))


def roll():
    return rollup.roll_up(lag_seconds=0)


def test_an_analysis_task_is_split_into_jobs_with_server_assigned_ids(alice, operator):
    lfns = input_dataset(operator, 5)
    task, pandaids = analysis(alice)
    assert (task.type, task.status, task.files_total, len(pandaids)) == (TaskType.ANALYSIS, TaskStatus.READY, 5, 3)
    jobs = list(Job.objects.filter(pk__in=pandaids).order_by("pk"))
    assert {job.task_id for job in jobs} == {task.task_id}
    assert len({job.jobset_id for job in jobs}) == 1 and jobs[0].jobset_id == jobs[0].job_definition_id
    first_inputs = list(JobFile.objects.filter(job=jobs[0], type="input").values_list("lfn", flat=True))
    assert first_inputs == lfns[:2]
    assert jobs[0].job_parameters == f"{lfns[0]},{lfns[1]} user.alice.reco.v1.root._000001.root"
    assert jobs[2].prod_source_label == "user"


def test_rules_for_who_submits_what(alice, operator):
    input_dataset(operator, 2)
    with pytest.raises(PermissionDenied, match="user.alice"):
        analysis(alice, output_dataset="user.bob.steal")
    with pytest.raises(PermissionDenied, match="production_manager"):
        submit_task(user=alice, spec={"name": "mc11.x", "input_dataset": INPUT, "output_dataset": "mc11.x.AOD",
                                      "transformation": "t"}, task_type=TaskType.PRODUCTION)  # fmt: skip
    with pytest.raises(InvalidInput, match="one splitting rule"):
        analysis(alice, n_events_per_job=10)
    with pytest.raises(InvalidInput, match="unknown task field"):
        analysis(alice, colour="red")
    assert not Task.objects.exists() and not Job.objects.exists()


def test_resubmitting_the_same_output_processes_only_new_files(alice, operator):
    input_dataset(operator, 4)
    task, first = analysis(alice)
    again, none = analysis(alice)
    assert again.pk == task.pk and none == []
    catalog.add_files_to_dataset(user=operator, name=INPUT, files=[
        {"lfn": f"{INPUT}._00009.pool.root", "fsize": 9, "adler32": "0000abcd"}])  # fmt: skip
    _, third = analysis(alice)
    assert len(third) == 1
    assert list(JobFile.objects.filter(job_id=third[0], type="input").values_list("lfn", flat=True)) == [
        f"{INPUT}._00009.pool.root"]  # fmt: skip
    assert TaskInput.objects.filter(task=task).count() == 5
    with pytest.raises(Conflict, match="same input"):
        analysis(alice, input_dataset="mc11.other")


def test_production_task_with_events_within_files(operator):
    manager = UserFactory(username="prodmgr")
    grant_role(manager, roles.PRODUCTION_MANAGER)
    input_dataset(operator, 2, events=250)
    spec = {"name": "mc11.007216.singlepart_mu18.recon.v11000303", "input_dataset": INPUT,
            "output_dataset": "mc11.007216.singlepart_mu18.recon.v11000303", "output_formats": "ESD.AOD",
            "transformation": "csc.reco.trf", "n_events_per_job": 100, "priority": 1500,
            "job_parameters": "${IN} ${OUT} skip=${SKIPEVENTS} max=${MAXEVENTS}"}  # fmt: skip
    task, pandaids = submit_task(user=manager, spec=spec, task_type=TaskType.PRODUCTION)
    assert (task.files_total, task.events_total, len(pandaids)) == (6, 500, 6)
    jobs = list(Job.objects.filter(pk__in=pandaids).order_by("pk"))
    assert jobs[1].job_parameters.endswith("skip=100 max=100") and jobs[2].job_parameters.endswith("skip=200 max=50")
    assert {job.prod_source_label for job in jobs} == {"managed"} and {j.assigned_priority for j in jobs} == {1500}
    assert JobFile.objects.filter(job=jobs[0], type="output").count() == 2


def test_roll_up_follows_the_jobs_and_matches_a_recount(alice, operator):
    input_dataset(operator, 6)
    task, pandaids = analysis(alice)
    roll()
    task.refresh_from_db()
    assert task.jobs_by_state == {"defined": 3} and task.status == TaskStatus.READY
    job = Job.objects.get(pk=pandaids[0])
    for new in (JobStatus.ACTIVATED, JobStatus.SENT, JobStatus.RUNNING, JobStatus.HOLDING, JobStatus.FINISHED):
        state.transition(job, new, actor="test")
    roll()
    task.refresh_from_db()
    assert task.status == TaskStatus.RUNNING and task.files_done == 2
    assert task.jobs_by_state == {"defined": 2, "finished": 1}

    # The second job fails and is retried; the retry finishes: its files are done once.
    failed = Job.objects.get(pk=pandaids[1])
    state.transition(failed, JobStatus.FAILED, actor="test")
    roll()
    task.refresh_from_db()
    assert task.files_failed == 2  # given up: nobody retried it yet
    child = retry.retry_job(failed, actor="alice")
    for new in (JobStatus.ACTIVATED, JobStatus.SENT, JobStatus.RUNNING, JobStatus.HOLDING, JobStatus.FINISHED):
        state.transition(child, new, actor="test")
    third = Job.objects.get(pk=pandaids[2])
    state.transition(third, JobStatus.CANCELLED, actor="test")
    roll()
    task.refresh_from_db()
    assert (task.files_done, task.files_failed) == (4, 2)
    recount = {s: TaskInput.objects.filter(task=task, status=s).count() for s in InputStatus.values}
    assert recount == {"pending": 0, "assigned": 0, "done": 4, "failed": 2}
    by_state = {}
    for job in Job.objects.filter(task_id=task.task_id):
        by_state[job.status] = by_state.get(job.status, 0) + 1
    assert task.jobs_by_state == by_state
    assert task.status == TaskStatus.FINISHED  # partly: two files failed for good
    assert TaskStatusLog.objects.filter(task=task, new_status=TaskStatus.FINISHED).exists()


def test_a_task_done_closes_its_output_datasets(alice, operator):
    input_dataset(operator, 1)
    site = SiteFactory(name="ANALY_X")
    task, (pandaid,) = analysis(alice, site="ANALY_X")
    Dataset.objects.create(name=task.output_dataset, kind="container")
    job = Job.objects.get(pk=pandaid)
    assert job.computing_site_id is None or job.computing_site == site
    for new in (JobStatus.ACTIVATED, JobStatus.SENT, JobStatus.RUNNING, JobStatus.HOLDING, JobStatus.FINISHED):
        state.transition(job, new, actor="test")
    roll()
    task.refresh_from_db()
    assert task.status == TaskStatus.DONE and task.ended_at is not None
    assert Dataset.objects.get(name=task.output_dataset).state == "closed"


def test_resubmitting_a_partly_finished_task_redoes_its_failed_files_and_new_ones(alice, operator):
    input_dataset(operator, 4)
    task, (first, second) = analysis(alice)
    for pandaid, end in ((first, JobStatus.FINISHED), (second, JobStatus.FAILED)):
        job = Job.objects.get(pk=pandaid)
        for new in (JobStatus.ACTIVATED, JobStatus.SENT, JobStatus.RUNNING, JobStatus.HOLDING, end):
            state.transition(job, new, actor="test")
    roll()
    task.refresh_from_db()
    assert (task.status, task.files_failed) == (TaskStatus.FINISHED, 2)
    catalog.add_files_to_dataset(user=operator, name=INPUT, files=[
        {"lfn": f"{INPUT}._00009.pool.root", "fsize": 9, "adler32": "0000abcd"}])  # fmt: skip
    again, pandaids = analysis(alice)
    assert again.pk == task.pk and len(pandaids) == 2  # the 2 failed files in one job, the new file in another
    task.refresh_from_db()
    assert (task.status, task.files_failed, task.files_total) == (TaskStatus.RUNNING, 0, 5)
    redone = set(JobFile.objects.filter(job_id__in=pandaids, type="input").values_list("lfn", flat=True))
    assert redone == {f"{INPUT}._00003.pool.root", f"{INPUT}._00004.pool.root", f"{INPUT}._00009.pool.root"}


def test_analysis_tasks_may_lower_their_priority_not_raise_it(alice, operator):
    input_dataset(operator, 1)
    with pytest.raises(InvalidInput, match="lower its priority"):
        analysis(alice, priority=5000)
    task, (pandaid,) = analysis(alice, priority=900)
    assert Job.objects.get(pk=pandaid).assigned_priority == 900

"""Task actions: kill (abort), retry, reassign; who may, what they answer, what the roll-up then sees."""

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from datasets.choices import DatasetState
from datasets.models import Dataset
from datasets.services import catalog, system
from jobs.choices import JobStatus
from jobs.models import Job, JobReport, JobStatusLog
from jobs.services import adder, brokerage, retry, state
from pandamon import roles
from pandamon.errors import Conflict, NotFound, PermissionDenied
from tasks.choices import InputStatus, TaskStatus, TaskType
from tasks.models import Task, TaskInput
from tasks.services import actions, rollup
from tasks.services.creation import submit_task
from tests.factories import SiteFactory, UserFactory, grant_role

pytestmark = pytest.mark.django_db
INPUT = "mc11.007216.singlepart_mu18.digit.v11000302"
PROGRESS = (JobStatus.ACTIVATED, JobStatus.SENT, JobStatus.RUNNING, JobStatus.HOLDING, JobStatus.FINISHED)


@pytest.fixture
def alice(db):
    return UserFactory(username="alice")


@pytest.fixture
def bob(db):
    return UserFactory(username="bob")


@pytest.fixture
def manager(db):
    return grant_role(UserFactory(username="prodmgr"), roles.PRODUCTION_MANAGER)


@pytest.fixture
def admin(db):
    return UserFactory(username="root", is_staff=True)


@pytest.fixture
def inputs(db):
    operator = grant_role(UserFactory(username="ddmops"), roles.DATA_OPERATOR)
    files = [{"lfn": f"{INPUT}._{i:05d}.pool.root", "fsize": 1000 + i, "adler32": "0000abcd"} for i in range(1, 7)]
    catalog.register_new_dataset(user=operator, name=INPUT, files=files)


def analysis(user, **extra):
    spec = {"input_dataset": INPUT, "output_dataset": f"user.{user.username}.reco.v1", "transformation": "run.sh",
            "job_parameters": "${IN} ${OUT}", "n_files_per_job": 2, **extra}  # fmt: skip
    task, pandaids = submit_task(user=user, spec=spec, task_type=TaskType.ANALYSIS)
    return task, [Job.objects.get(pk=pandaid) for pandaid in pandaids]


def production(user):
    spec = {"name": "mc11.007216.recon.v1", "input_dataset": INPUT, "output_dataset": "mc11.007216.recon.v1",
            "transformation": "csc.reco.trf", "n_files_per_job": 2}  # fmt: skip
    task, pandaids = submit_task(user=user, spec=spec, task_type=TaskType.PRODUCTION)
    return task, [Job.objects.get(pk=pandaid) for pandaid in pandaids]


def walk(job, *states, **fields):
    for new in states:
        state.transition(job, new, actor="test", **fields)
        fields = {}
    return job


def roll(task):
    rollup.roll_up(lag_seconds=0)
    task.refresh_from_db()
    return task


def pieces(task):
    return dict(TaskInput.objects.filter(task=task).values_list("lfn", "job_id"))


# -- who may ---------------------------------------------------------------------------------------------------


def test_who_may_act_on_an_analysis_task(inputs, alice, bob, manager, admin):
    task, _ = analysis(alice)
    for action in (actions.kill_task, actions.retry_task, actions.reassign_task):
        with pytest.raises(PermissionDenied, match=f"task {task.pk}: only its owner or an admin may"):
            action(user=bob, task_id=task.pk)
        # Production managers manage production tasks, not users' analyses (as with single jobs).
        with pytest.raises(PermissionDenied):
            action(user=manager, task_id=task.pk)
    assert actions.retry_task(user=alice, task_id=task.pk)["retried"] == 0
    assert actions.reassign_task(user=admin, task_id=task.pk)["reassigned"] == 0
    with pytest.raises(NotFound):
        actions.kill_task(user=alice, task_id=task.pk + 1000)


def test_who_may_act_on_a_production_task(inputs, alice, manager, admin):
    task, _ = production(manager)
    other_manager = grant_role(UserFactory(username="prodmgr2"), roles.PRODUCTION_MANAGER)
    with pytest.raises(PermissionDenied, match="only a production manager or an admin may"):
        actions.retry_task(user=alice, task_id=task.pk)
    assert actions.retry_task(user=other_manager, task_id=task.pk)["retried"] == 0
    assert actions.retry_task(user=admin, task_id=task.pk)["retried"] == 0
    # Its owner without the role any more: production managers only.
    manager.groups.clear()
    manager = type(manager).objects.get(pk=manager.pk)
    with pytest.raises(PermissionDenied):
        actions.kill_task(user=manager, task_id=task.pk)


# -- kill --------------------------------------------------------------------------------------------------------


def test_kill_task_cancels_queued_jobs_stops_running_ones_and_aborts_the_task(inputs, alice):
    task, (queued, running, defined) = analysis(alice)
    site = SiteFactory(name="BNL")
    walk(queued, JobStatus.ACTIVATED, computing_site=site)
    walk(running, JobStatus.ACTIVATED, JobStatus.SENT, JobStatus.RUNNING, computing_site=site)
    answer = actions.kill_task(user=alice, task_id=task.pk, reason="wrong input")
    assert answer == {"task_id": task.pk, "status": TaskStatus.ABORTED, "jobs": 3, "cancelled": 2,
                      "kill_command_sent": 1, "already_being_killed": 0,
                      "message": f"task {task.pk} aborted: 2 queued job(s) cancelled, 1 running job(s) told to stop"}  # fmt: skip
    for job in (queued, defined):
        job.refresh_from_db()
        assert job.status == JobStatus.CANCELLED and job.task_buffer_error_diag == "killed by alice: wrong input"
    running.refresh_from_db()
    assert (running.status, running.command_to_pilot) == (JobStatus.RUNNING, "tobekilled")
    task.refresh_from_db()
    assert (task.status, task.status_reason) == (TaskStatus.ABORTED, "killed by alice: wrong input")
    with pytest.raises(Conflict, match="already aborted"):
        actions.kill_task(user=alice, task_id=task.pk)

    # The running job ends (cancelled through the Adder); nothing retries a job of an aborted task.
    walk(running, JobStatus.HOLDING)
    JobReport.objects.create(job=running, reported_state="failed", received_at=timezone.now())
    assert adder.finalize_job(running.pk) == JobStatus.CANCELLED
    assert not Job.objects.filter(parent_id=running.pk).exists()
    with pytest.raises(Conflict, match="retry the task"):
        retry.retry_for_user(user=alice, pandaid=queued.pk)
    task = roll(task)
    assert task.status == TaskStatus.ABORTED and task.files_failed == 6


def test_automatic_retries_stop_once_the_task_is_aborted(inputs, alice):
    task, (job, *_) = analysis(alice)
    walk(job, JobStatus.ACTIVATED, JobStatus.SENT, JobStatus.RUNNING, JobStatus.HOLDING,
         computing_site=SiteFactory(name="BNL"), pilot_error_code=1137)  # fmt: skip
    Task.objects.filter(pk=task.pk).update(status=TaskStatus.ABORTED)
    JobReport.objects.create(job=job, reported_state="failed", received_at=timezone.now())
    adder.finalize_job(job.pk)
    assert not Job.objects.filter(parent_id=job.pk).exists()
    assert JobStatusLog.objects.filter(job=job).last().reason.endswith(f"not retried (its task {task.pk} is aborted)")


# -- retry -------------------------------------------------------------------------------------------------------


def test_retry_task_makes_new_attempts_of_failed_jobs_and_the_roll_up_moves_their_inputs(inputs, alice):
    task, (done, failed, cancelled) = analysis(alice)
    system.destination_dataset(task.output_dataset, f"{task.output_dataset}_sub1", owner=alice)  # as brokerage does
    walk(done, *PROGRESS)
    walk(failed, JobStatus.FAILED, exe_error_code=1)
    walk(cancelled, JobStatus.CANCELLED)
    task = roll(task)
    assert (task.status, task.files_done, task.files_failed) == (TaskStatus.FINISHED, 2, 4)
    assert Dataset.objects.get(name=task.output_dataset).state == DatasetState.CLOSED
    before = pieces(task)

    answer = actions.retry_task(user=alice, task_id=task.pk)
    new = Job.objects.get(parent_id=failed.pk)
    assert answer == {"task_id": task.pk, "status": TaskStatus.RUNNING, "retried": 1, "pandaids": [new.pk],
                      "message": f"1 failed job(s) of task {task.pk} retried as new attempts"}  # fmt: skip
    assert (new.attempt_nr, new.status, new.task_id) == (2, JobStatus.DEFINED, task.pk)
    assert JobStatusLog.objects.get(job=new).reason == f"retry of {failed.pk} (task retry by alice)"
    assert Dataset.objects.get(name=task.output_dataset).state == DatasetState.OPEN  # takes the new outputs
    assert not Job.objects.filter(parent_id=cancelled.pk).exists()  # failed only

    task = roll(task)
    after = pieces(task)
    moved = [lfn for lfn, pandaid in before.items() if pandaid == failed.pk]
    assert len(moved) == 2 and all(after[lfn] == new.pk for lfn in moved)
    assert (task.files_failed, task.status) == (2, TaskStatus.RUNNING)
    assert TaskInput.objects.filter(job_id=new.pk, status=InputStatus.ASSIGNED, attempts=2).count() == 2

    again = actions.retry_task(user=alice, task_id=task.pk)
    assert (again["retried"], again["message"]) == (
        0, f"task {task.pk} has no failed job without a new attempt; nothing to retry")  # fmt: skip
    everything = actions.retry_task(user=alice, task_id=task.pk, failed_only=False)
    assert everything["retried"] == 1 and Job.objects.filter(parent_id=cancelled.pk).exists()

    for job in Job.objects.filter(task_id=task.pk, status=JobStatus.DEFINED):
        walk(job, *PROGRESS)
    task = roll(task)
    assert (task.status, task.files_done, task.files_failed) == (TaskStatus.DONE, 6, 0)


def test_a_third_of_the_payloads_fail_once_with_a_transient_code_and_the_task_ends_done(inputs, alice):
    task, jobs = analysis(alice)
    site = SiteFactory(name="BNL")
    first = jobs[0]
    walk(first, JobStatus.ACTIVATED, JobStatus.SENT, JobStatus.RUNNING, JobStatus.HOLDING, computing_site=site,
         exe_error_code=75, exe_error_diag="conditions database temporarily unreachable")  # fmt: skip
    JobReport.objects.create(job=first, reported_state="failed", received_at=timezone.now())
    assert adder.finalize_job(first.pk) == JobStatus.FAILED
    second = Job.objects.get(parent_id=first.pk)  # the seeded EX_TEMPFAIL rule retried it
    for job in (second, *jobs[1:]):
        walk(job, *PROGRESS)
    task = roll(task)
    assert (task.status, task.files_done, task.files_failed) == (TaskStatus.DONE, 6, 0)


def test_a_broken_task_is_not_retried(inputs, alice):
    task, _ = analysis(alice)
    Task.objects.filter(pk=task.pk).update(status=TaskStatus.BROKEN, status_reason="bad transformation")
    with pytest.raises(Conflict, match="broken \\(bad transformation\\)"):
        actions.retry_task(user=alice, task_id=task.pk)


def test_retrying_an_aborted_task_runs_it_again(inputs, alice):
    task, (job, *_) = analysis(alice)
    actions.kill_task(user=alice, task_id=task.pk)
    answer = actions.retry_task(user=alice, task_id=task.pk, failed_only=False)
    assert answer["retried"] == 3 and answer["status"] == TaskStatus.RUNNING
    task.refresh_from_db()
    assert task.ended_at is None
    task = roll(task)
    assert task.files_failed == 0 and task.status == TaskStatus.RUNNING


# -- reassign ----------------------------------------------------------------------------------------------------


def test_reassign_task_moves_queued_jobs_not_yet_taken_by_a_pilot(inputs, alice):
    task, (activated, assigned, running) = analysis(alice)
    bnl, cern = SiteFactory(name="BNL"), SiteFactory(name="CERN")
    walk(activated, JobStatus.ACTIVATED, computing_site=bnl)
    walk(assigned, JobStatus.ASSIGNED, computing_site=cern)
    walk(running, JobStatus.ACTIVATED, JobStatus.SENT, JobStatus.RUNNING, computing_site=bnl)
    before = pieces(task)
    answer = actions.reassign_task(user=alice, task_id=task.pk)
    assert answer["reassigned"] == 2
    assert answer["message"] == f"2 queued job(s) of task {task.pk} closed and brokered again as new attempts"
    for old in (activated, assigned):
        old.refresh_from_db()
        assert (old.status, old.task_buffer_error_code, old.task_buffer_error_diag) == (
            JobStatus.CLOSED, 105, "reassigned by alice")  # fmt: skip
        new = Job.objects.get(parent_id=old.pk)
        assert (new.status, new.computing_site_id, new.attempt_nr) == (JobStatus.DEFINED, None, 2)
        assert JobStatusLog.objects.filter(job=old).last().reason == f"reassigned by alice; reassigned as {new.pk}"
    assert Job.objects.get(pk=running.pk).status == JobStatus.RUNNING
    task = roll(task)
    after = pieces(task)
    assert {after[lfn] for lfn, pandaid in before.items() if pandaid == activated.pk} == {
        Job.objects.get(parent_id=activated.pk).pk}  # fmt: skip
    assert task.files_failed == 0


def test_reassign_away_from_one_site(inputs, alice):
    task, (at_bnl, at_cern, _) = analysis(alice)
    bnl, cern = SiteFactory(name="BNL"), SiteFactory(name="CERN")
    walk(at_bnl, JobStatus.ACTIVATED, computing_site=bnl)
    walk(at_cern, JobStatus.ACTIVATED, computing_site=cern)
    answer = actions.reassign_task(user=alice, task_id=task.pk, exclude_site="BNL")
    assert answer["reassigned"] == 1 and answer["pandaids"] == [Job.objects.get(parent_id=at_bnl.pk).pk]
    assert Job.objects.get(pk=at_cern.pk).status == JobStatus.ACTIVATED
    task.refresh_from_db()
    assert task.excluded_sites == ["BNL"]
    with pytest.raises(NotFound, match="no site named NOWHERE"):
        actions.reassign_task(user=alice, task_id=task.pk, exclude_site="NOWHERE")
    nothing = actions.reassign_task(user=alice, task_id=task.pk, exclude_site="BNL")
    assert nothing["reassigned"] == 0 and "nothing to reassign" in nothing["message"]


def test_an_ended_task_has_nothing_to_kill_or_reassign(inputs, alice):
    task, jobs = analysis(alice)
    for job in jobs:
        walk(job, *PROGRESS)
    task = roll(task)
    assert task.status == TaskStatus.DONE
    with pytest.raises(Conflict, match="already done"):
        actions.kill_task(user=alice, task_id=task.pk)
    with pytest.raises(Conflict, match="no queued jobs"):
        actions.reassign_task(user=alice, task_id=task.pk)


def test_pause_holds_the_jobs_and_resume_releases_them_over_the_api(db):
    owner = UserFactory(username="paula")
    operator = UserFactory(username="ops2")
    grant_role(operator, roles.DATA_OPERATOR)
    SiteFactory(name="PAUSESITE")
    catalog.register_new_dataset(user=operator, name="mc11.pause.input", files=[
        {"lfn": f"pause._{i}.root", "fsize": 10, "adler32": "0000abcd"} for i in range(2)])  # fmt: skip
    task, pandaids = submit_task(user=owner, task_type=TaskType.ANALYSIS, spec={
        "input_dataset": "mc11.pause.input", "output_dataset": "user.paula.pause", "transformation": "run.sh"})  # fmt: skip
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {Token.objects.create(user=owner).key}")
    paused = client.post(f"/api/v1/tasks/{task.pk}/pause/", {}, format="json")
    assert paused.status_code == 200 and paused.json()["status"] == TaskStatus.PAUSED
    brokerage.broker_defined_jobs()
    assert set(Job.objects.filter(pk__in=pandaids).values_list("status", flat=True)) == {JobStatus.DEFINED}
    assert client.post(f"/api/v1/tasks/{task.pk}/pause/", {}, format="json").status_code == 409
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {Token.objects.create(user=UserFactory(username='eve')).key}")
    assert other.post(f"/api/v1/tasks/{task.pk}/resume/", {}, format="json").status_code == 403
    resumed = client.post(f"/api/v1/tasks/{task.pk}/resume/", {}, format="json")
    assert resumed.status_code == 200
    brokerage.broker_defined_jobs()
    # brokered again (assigned: their input still has to reach the site)
    assert set(Job.objects.filter(pk__in=pandaids).values_list("status", flat=True)) == {JobStatus.ASSIGNED}
    killed = client.post(f"/api/v1/tasks/{task.pk}/kill/", {"reason": "wrong cuts"}, format="json")
    assert killed.status_code == 200 and killed.json()["status"] == TaskStatus.ABORTED

"""A task whose first jobs all fail for good, with none succeeding, is broken: the roll-up stops its
live jobs and it takes neither retries nor resubmissions (tasks/services/status.broken_reason)."""

import pytest

from jobs.choices import JobStatus
from jobs.models import Job
from jobs.services import retry, state
from pandamon import roles
from pandamon.errors import Conflict
from tasks.choices import TaskStatus, TaskType
from tasks.models import TaskStatusLog
from tasks.services import actions
from tasks.services.creation import submit_task

from ..factories import UserFactory, grant_role
from .test_tasks import INPUT, input_dataset, roll

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(db):
    return UserFactory(username="alice")


@pytest.fixture
def task_of_five_jobs(alice):
    operator = UserFactory(username="ddmops")
    grant_role(operator, roles.DATA_OPERATOR)
    input_dataset(operator, 10)
    spec = {"input_dataset": INPUT, "output_dataset": "user.alice.reco.v1", "transformation": "run.sh",
            "job_parameters": "${IN} ${OUT}", "n_files_per_job": 2}  # fmt: skip
    return submit_task(user=alice, spec=spec, task_type=TaskType.ANALYSIS)


def end(pandaid, new):
    job = Job.objects.get(pk=pandaid)
    for step in (JobStatus.ACTIVATED, JobStatus.SENT, JobStatus.RUNNING, JobStatus.HOLDING):
        state.transition(job, step, actor="test")
    state.transition(job, new, actor="test")


def test_three_jobs_failed_for_good_and_none_succeeded_break_the_task(alice, task_of_five_jobs):
    task, pandaids = task_of_five_jobs
    Job.objects.filter(pk=pandaids[3]).update(status=JobStatus.RUNNING)  # one already on a worker node
    for pandaid in pandaids[:2]:
        end(pandaid, JobStatus.FAILED)
    roll()
    task.refresh_from_db()
    assert task.status == TaskStatus.RUNNING, "two failures are not enough"

    end(pandaids[2], JobStatus.FAILED)
    roll()
    task.refresh_from_db()
    assert task.status == TaskStatus.BROKEN
    assert task.status_reason.startswith("its first 3 jobs failed for good and none succeeded")
    log = TaskStatusLog.objects.filter(task=task, new_status=TaskStatus.BROKEN).get()
    assert log.actor == "task-rollup"
    running, queued = Job.objects.get(pk=pandaids[3]), Job.objects.get(pk=pandaids[4])
    assert running.command_to_pilot == "tobekilled" and queued.status == JobStatus.CANCELLED

    with pytest.raises(Conflict, match="broken"):
        actions.retry_task(user=alice, task_id=task.task_id)
    with pytest.raises(Conflict, match="takes no new input"):
        submit_task(user=alice, spec={"input_dataset": INPUT, "output_dataset": "user.alice.reco.v1",
                                      "transformation": "run.sh"}, task_type=TaskType.ANALYSIS)  # fmt: skip


def test_a_success_first_keeps_the_task_going_whatever_fails_after(task_of_five_jobs):
    task, pandaids = task_of_five_jobs
    end(pandaids[0], JobStatus.FINISHED)
    for pandaid in pandaids[1:4]:
        end(pandaid, JobStatus.FAILED)
    roll()
    task.refresh_from_db()
    assert task.status == TaskStatus.RUNNING and task.files_failed == 6


def test_failed_jobs_with_new_attempts_have_not_failed_for_good(task_of_five_jobs):
    task, pandaids = task_of_five_jobs
    for pandaid in pandaids[:3]:
        end(pandaid, JobStatus.FAILED)
        retry.retry_job(Job.objects.get(pk=pandaid), actor="alice")
    roll()
    task.refresh_from_db()
    assert task.status == TaskStatus.RUNNING and task.files_failed == 0


def test_the_rule_can_be_turned_off(settings, task_of_five_jobs):
    settings.PANDA = {**settings.PANDA, "TASK_BROKEN_AFTER_FAILED_JOBS": 0}
    task, pandaids = task_of_five_jobs
    for pandaid in pandaids[:4]:
        end(pandaid, JobStatus.FAILED)
    roll()
    task.refresh_from_db()
    assert task.status == TaskStatus.RUNNING

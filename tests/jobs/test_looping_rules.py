"""The server's side of the looping-job killer: a task can turn the check off for its jobs, and a
job the pilot killed as looping (pilot error 1150) is not retried automatically."""

import pytest
from django.test import Client
from django.utils import timezone

from datasets.services import catalog
from jobs.choices import JobStatus
from jobs.models import Job, JobReport
from jobs.services import adder, state
from pandamon import roles
from tasks import panda_taskparams
from tasks.services import creation

from ..factories import JobFactory, UserFactory, grant_role

pytestmark = pytest.mark.django_db
INPUT = "data11.00180164.physics_Muons.AOD"


@pytest.fixture
def alice(db):
    ddmops = grant_role(UserFactory(username="ddmops"), roles.DATA_OPERATOR)
    files = [{"lfn": f"{INPUT}._0000{i}.pool.root", "fsize": 1000, "adler32": "0000abcd"} for i in (1, 2)]
    catalog.register_new_dataset(user=ddmops, name=INPUT, files=files)
    return UserFactory(username="alice")


def task_spec(**extra):
    return {"input_dataset": INPUT, "output_dataset": "user.alice.loops.v1", "transformation": "/bin/true",
            "job_parameters": "${IN}", **extra}  # fmt: skip


@pytest.mark.parametrize(("flag", "special"), [(True, "lc"), (False, ""), (None, "")])
def test_a_task_without_looping_check_gives_its_jobs_the_lc_flag(alice, flag, special):
    task, pandaids = creation.submit_task(user=alice, spec=task_spec(no_looping_check=flag), task_type="analysis")
    assert task.no_looping_check is bool(flag)
    assert set(Job.objects.filter(pk__in=pandaids).values_list("special_handling", flat=True)) == {special}


def test_the_flag_must_be_a_boolean(alice):
    with pytest.raises(Exception, match="no_looping_check: give true or false"):
        creation.submit_task(user=alice, spec=task_spec(no_looping_check="yes"), task_type="analysis")


def test_the_dispatcher_tells_the_pilot(alice, site, pilot_token):
    task, [pandaid] = creation.submit_task(user=alice, spec=task_spec(no_looping_check=True, n_files_per_job=2),
                                           task_type="analysis")  # fmt: skip
    job = Job.objects.get(pk=pandaid)
    for new in (JobStatus.ASSIGNED, JobStatus.ACTIVATED):
        state.transition(job, new, actor="test")
    Job.objects.filter(pk=pandaid).update(computing_site=site)
    answer = Client().post("/server/panda/getJob", {"siteName": site.name}, HTTP_AUTHORIZATION=f"Bearer {pilot_token}",
                           HTTP_ACCEPT="application/json").json()  # fmt: skip
    assert answer["PandaID"] == pandaid and answer["loopingCheck"] is False


def test_jedi_noloopingcheck_round_trips(alice):
    params = panda_taskparams.to_task_params(creation.submit_task(
        user=alice, spec=task_spec(no_looping_check=True), task_type="analysis")[0])  # fmt: skip
    assert params["noLoopingCheck"] is True
    assert panda_taskparams.to_spec(params, user=alice).spec["no_looping_check"] is True


@pytest.mark.parametrize("exit_code", [143, 137])  # SIGTERM; SIGKILL when it ignored SIGTERM
def test_a_looping_job_is_not_retried(site, exit_code):
    job = JobFactory(status=JobStatus.HOLDING, computing_site=site, max_attempt=3, pilot_error_code=1150,
                     pilot_error_diag="Looping job killed by pilot: ...", exe_error_code=exit_code,
                     trans_exit_code=exit_code)  # fmt: skip
    JobReport.objects.create(job=job, reported_state="failed", received_at=timezone.now())
    assert adder.finalize_job(job.pk) == JobStatus.FAILED
    assert not Job.objects.filter(parent_id=job.pk).exists()
    reason = job.status_log.get(new_status=JobStatus.FAILED).reason
    assert "no_retry" in reason, reason

import pytest

from jobs.choices import FINAL_STATES, JobStatus
from jobs.models import JobStatusLog
from jobs.services import state
from pandamon.errors import Conflict

from ..factories import JobFactory

pytestmark = pytest.mark.django_db

LIFECYCLE = [
    JobStatus.ACTIVATED,
    JobStatus.SENT,
    JobStatus.STARTING,
    JobStatus.RUNNING,
    JobStatus.HOLDING,
    JobStatus.FINISHED,
]


def test_the_normal_lifecycle_is_allowed_and_every_step_is_logged():
    job = JobFactory(status=JobStatus.DEFINED)
    for new in LIFECYCLE:
        state.transition(job, new, actor="test", reason=f"to {new}")
    job.refresh_from_db()
    assert job.status == JobStatus.FINISHED
    log = list(JobStatusLog.objects.filter(job=job).values_list("old_status", "new_status"))
    assert log == list(zip([JobStatus.DEFINED, *LIFECYCLE[:-1]], LIFECYCLE, strict=True))


@pytest.mark.parametrize("final", sorted(FINAL_STATES))
@pytest.mark.parametrize("new", [JobStatus.RUNNING, JobStatus.ACTIVATED, JobStatus.FAILED, JobStatus.DEFINED])
def test_final_states_are_final(final, new):
    job = JobFactory(status=final)
    with pytest.raises(state.TransitionRefused, match="final states are final"):
        state.transition(job, new, actor="test")
    job.refresh_from_db()
    assert job.status == final
    assert not JobStatusLog.objects.filter(job=job).exists()


@pytest.mark.parametrize(
    "old,new",
    [
        (JobStatus.DEFINED, JobStatus.RUNNING),
        (JobStatus.ACTIVATED, JobStatus.FINISHED),
        (JobStatus.HOLDING, JobStatus.RUNNING),
        (JobStatus.TRANSFERRING, JobStatus.RUNNING),
        (JobStatus.RUNNING, JobStatus.ACTIVATED),
    ],
)
def test_skipping_or_going_back_is_refused(old, new):
    job = JobFactory(status=old)
    with pytest.raises(state.TransitionRefused, match=f"cannot go from {old} to {new}"):
        state.transition(job, new, actor="test")
    assert JobFactory._meta.model.objects.get(pk=job.pk).status == old


def test_a_stale_instance_cannot_overwrite_a_concurrent_change():
    job = JobFactory(status=JobStatus.ACTIVATED)
    stale = JobFactory._meta.model.objects.get(pk=job.pk)
    state.transition(job, JobStatus.SENT, actor="pilot-1")
    with pytest.raises(Conflict, match="changed state concurrently"):
        state.transition(stale, JobStatus.SENT, actor="pilot-2")
    assert JobStatusLog.objects.filter(job=job, new_status=JobStatus.SENT).count() == 1


def test_transition_many_moves_jobs_from_different_states_in_one_call():
    jobs = [
        JobFactory(status=JobStatus.RUNNING),
        JobFactory(status=JobStatus.STARTING),
        JobFactory(status=JobStatus.SENT),
    ]
    state.transition_many(
        jobs, JobStatus.FAILED, actor="watcher", reason="lost heartbeat", job_dispatcher_error_code=100
    )
    for job in jobs:
        job.refresh_from_db()
        assert (job.status, job.job_dispatcher_error_code) == (JobStatus.FAILED, 100)
    assert JobStatusLog.objects.filter(new_status=JobStatus.FAILED, reason="lost heartbeat").count() == 3

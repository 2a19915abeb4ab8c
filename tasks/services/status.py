"""Task state changes, recorded in TaskStatusLog, and the state that follows from the counters."""

from django.conf import settings
from django.utils import timezone

from datasets.models import ContainerMember, Dataset
from datasets.services import system
from jobs.choices import FINAL_STATES, PILOT_STATES

from ..choices import FINAL_TASK_STATES, InputStatus, TaskStatus
from ..models import Task, TaskInput, TaskStatusLog


def record(task, old, new, *, actor, reason=""):
    TaskStatusLog.objects.create(task=task, old_status=old, new_status=new, changed_at=timezone.now(),
                                 actor=actor[:150], reason=reason[:500])  # fmt: skip


def change(task, new, *, actor, reason=""):
    """Move `task` to `new` (no-op when it is there already); a final state closes its output."""
    if task.status == new:
        return task
    now = timezone.now()
    old = task.status
    fields = {"status": new, "status_changed_at": now, "status_reason": reason[:500], "modified_at": now}
    if new in FINAL_TASK_STATES:
        fields["ended_at"] = now
    Task.objects.filter(pk=task.pk).update(**fields)
    for name, value in fields.items():
        setattr(task, name, value)
    record(task, old, new, actor=actor, reason=reason)
    if new in FINAL_TASK_STATES:
        close_outputs(task)
    return task


def follows_from_counters(task):
    """The state the counters call for (None to keep the current one)."""
    if task.status in (TaskStatus.ABORTED, TaskStatus.BROKEN, TaskStatus.PAUSED) or not task.files_total:
        return None
    states = {state: n for state, n in task.jobs_by_state.items() if n}
    live = sum(n for state, n in states.items() if state not in FINAL_STATES)
    if live == 0 and task.files_done + task.files_failed >= task.files_total:
        if not task.files_failed:
            return TaskStatus.DONE
        return TaskStatus.FAILED if not task.files_done else TaskStatus.FINISHED
    started = any(state in PILOT_STATES or state in FINAL_STATES for state in states)
    return TaskStatus.RUNNING if started else TaskStatus.READY


def broken_reason(task):
    """Why the task must stop as broken, or "": its first jobs all failed for good (after their
    retries), none succeeded, and work remains. Like JEDI's scout jobs: a transformation that fails
    everywhere would otherwise spend the grid on every one of its input pieces."""
    threshold = settings.PANDA["TASK_BROKEN_AFTER_FAILED_JOBS"]
    if not threshold or task.status in FINAL_TASK_STATES or task.files_done or not task.files_failed:
        return ""
    if task.files_failed >= task.files_total:
        return ""  # nothing left to save: the counters end it as failed, which a retry may take up
    failed_jobs = TaskInput.objects.filter(task=task, status=InputStatus.FAILED).values("job_id").distinct().count()
    if failed_jobs < threshold:
        return ""
    return (f"its first {failed_jobs} jobs failed for good and none succeeded: the transformation or its "
            "parameters are likely wrong (see the jobs' errors); fix them and submit a new task")  # fmt: skip


def close_outputs(task):
    """The task ended: its output container and the destination datasets in it take no more files."""
    container = Dataset.objects.filter(name=task.output_dataset).first()
    if container is None:
        return
    members = ContainerMember.objects.filter(container=container).values_list("member_id", flat=True)
    system.close_datasets([container.pk, *members])

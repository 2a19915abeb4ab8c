"""What people do to a whole task: kill it, retry its failed jobs, reassign its queued jobs.

Who may: an analysis task's owner; for a production task, production managers only; admins always.
Each action locks the task, works through jobs.services (kill, retry_job: one path for state
changes, the state log and the task's input pieces, which the roll-up moves to new attempts)
and answers with what it did: {"task_id", "status", counts, "message"}. Refusals raise
PermissionDenied (403) or Conflict (409) with the reason.
"""

from django.db import transaction

from datasets.services import system
from jobs.choices import LIVE_STATES, JobStatus
from jobs.models import Job
from jobs.services import kill, retry, state
from pandamon import roles
from pandamon.errors import Conflict, NotFound, PermissionDenied
from sites.models import Site

from ..choices import FINAL_TASK_STATES, TaskStatus, TaskType
from ..models import Task
from . import status

# Queued jobs a reassignment moves: brokered (they have a site) but not yet taken by a pilot.
REASSIGNABLE_STATES = (JobStatus.ASSIGNED, JobStatus.ACTIVATED, JobStatus.THROTTLED, JobStatus.DEFINED,
                       JobStatus.WAITING)  # fmt: skip
REASSIGNED = 105  # taskBufferErrorCode "reassigned" (jobs.errorcodes.TASK_BUFFER)


def may_manage(user, task):
    """An analysis task's owner; production managers for production tasks; admins always."""
    if roles.is_admin(user):
        return True
    if task.type == TaskType.PRODUCTION:
        return roles.has_role(user, roles.PRODUCTION_MANAGER)
    return task.owner_id is not None and task.owner_id == user.pk


def kill_task(*, user, task_id, reason=""):
    """Abort the task: its queued jobs are cancelled, its running ones get the kill command; the task
    takes no new input or retries. Returns counts of what happened to its live jobs."""
    with transaction.atomic():
        task = _task_for(user, task_id, "kill")
        if task.status in FINAL_TASK_STATES:
            raise Conflict(f"task {task_id} is already {task.status}; there is nothing to kill")
        jobs = list(
            Job.objects.select_for_update().filter(task_id=task.task_id, status__in=LIVE_STATES).order_by("pandaid")
        )
        counts = kill.kill_locked(jobs, actor=user.username, reason=reason or f"task {task_id} aborted")
        why = f"killed by {user.username}" + (f": {reason}" if reason else "")
        status.change(task, TaskStatus.ABORTED, actor=user.username, reason=why)
    return {
        "task_id": task.task_id,
        "status": task.status,
        "jobs": len(jobs),
        **counts,
        "message": f"task {task_id} aborted: {counts['cancelled']} queued job(s) cancelled, "
        f"{counts['kill_command_sent']} running job(s) told to stop",
    }


def pause_task(*, user, task_id):
    """Hold the task's jobs not yet brokered (the brokerage skips them); running jobs go on."""
    with transaction.atomic():
        task = _task_for(user, task_id, "pause")
        if task.status in FINAL_TASK_STATES or task.status == TaskStatus.PAUSED:
            raise Conflict(
                f"task {task_id} is {task.status}; only a task that is not over and not paused can be paused"
            )
        status.change(task, TaskStatus.PAUSED, actor=user.username, reason=f"paused by {user.username}")
    return {"task_id": task.task_id, "status": task.status,
            "message": f"task {task_id} paused: its jobs not yet brokered wait until it is resumed"}  # fmt: skip


def resume_task(*, user, task_id):
    """Let a paused task's jobs be brokered again; its state follows its jobs again."""
    with transaction.atomic():
        task = _task_for(user, task_id, "resume")
        if task.status != TaskStatus.PAUSED:
            raise Conflict(f"task {task_id} is {task.status}, not paused")
        status.change(task, TaskStatus.RUNNING, actor=user.username, reason=f"resumed by {user.username}")
        settled = status.follows_from_counters(task)
        if settled is not None:
            status.change(task, settled, actor=user.username, reason=f"resumed by {user.username}")
    transaction.on_commit(_queue_brokerage)
    return {"task_id": task.task_id, "status": task.status, "message": f"task {task_id} resumed"}


def _queue_brokerage():
    from jobs.tasks import broker_defined_jobs

    broker_defined_jobs.delay()


def break_task(task, *, reason, actor):
    """End a task that cannot run as defined (status.broken_reason): its queued jobs are cancelled,
    its running ones get the kill command. The caller holds the task's lock."""
    jobs = list(
        Job.objects.select_for_update().filter(task_id=task.task_id, status__in=LIVE_STATES).order_by("pandaid")
    )
    counts = kill.kill_locked(jobs, actor=actor, reason=f"task {task.task_id} is broken")
    status.change(task, TaskStatus.BROKEN, actor=actor, reason=reason)
    return counts


def retry_task(*, user, task_id, failed_only=True):
    """New attempts for the task's failed jobs that have none yet (with failed_only=False, also its
    cancelled and closed ones). Not limited by max_attempt: a person decided. An ended or aborted
    task runs again; a broken one is refused (it cannot run as defined)."""
    ended = (JobStatus.FAILED,) if failed_only else (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.CLOSED)
    with transaction.atomic():
        task = _task_for(user, task_id, "retry")
        if task.status == TaskStatus.BROKEN:
            raise Conflict(f"task {task_id} is broken ({task.status_reason or 'no reason given'}); "
                           "it cannot run as defined, so it is not retried")  # fmt: skip
        retried_parents = Job.objects.filter(task_id=task.task_id, parent_id__isnull=False).values("parent_id")
        jobs = list(
            Job.objects.select_for_update()
            .filter(task_id=task.task_id, status__in=ended)
            .exclude(pandaid__in=retried_parents)
            .order_by("pandaid")
        )
        why = f"task retry by {user.username}"
        new = [retry.retry_job(job, actor=user.username, keep_site=retry.pins_site(task), reason=why) for job in jobs]
        if new:
            _run_again(task, actor=user.username, reason=f"{why}: {len(new)} new attempt(s)")
    kinds = "failed" if failed_only else "failed, cancelled or closed"
    return {
        "task_id": task.task_id,
        "status": task.status,
        "retried": len(new),
        "pandaids": [job.pandaid for job in new],
        "message": f"{len(new)} {kinds} job(s) of task {task_id} retried as new attempts"
        if new
        else f"task {task_id} has no {kinds} job without a new attempt; nothing to retry",
    }


def reassign_task(*, user, task_id, exclude_site=None):
    """Queued jobs not yet taken by a pilot (assigned, activated, or defined/waiting at a site) are
    closed and brokered again as new attempts. With `exclude_site`, only the jobs at that site move,
    and the site is added to the task's excluded sites."""
    with transaction.atomic():
        task = _task_for(user, task_id, "reassign")
        if task.status in FINAL_TASK_STATES:
            raise Conflict(f"task {task_id} is {task.status}; it has no queued jobs to reassign")
        jobs = Job.objects.select_for_update().filter(task_id=task.task_id, status__in=REASSIGNABLE_STATES,
                                                      computing_site__isnull=False)  # fmt: skip
        if exclude_site:
            site = Site.objects.filter(name=exclude_site).first()
            if site is None:
                raise NotFound(f"no site named {exclude_site}")
            if task.site == site.name:
                raise Conflict(f"task {task_id} runs only at {site.name}; its jobs cannot be moved away from it")
            jobs = jobs.filter(computing_site=site)
            if site.name not in task.excluded_sites:
                task.excluded_sites = [*task.excluded_sites, site.name]
                Task.objects.filter(pk=task.pk).update(excluded_sites=task.excluded_sites)
        jobs = list(jobs.order_by("pandaid"))
        why = f"reassigned by {user.username}" + (f" away from {exclude_site}" if exclude_site else "")
        new = []
        for job in jobs:
            state.transition(job, JobStatus.CLOSED, actor=user.username, reason=why,
                             task_buffer_error_code=REASSIGNED, task_buffer_error_diag=why[:300])  # fmt: skip
            child = retry.retry_job(job, actor=user.username, keep_site=retry.pins_site(task), reason=why)
            retry.annotate_last_change(job, f"reassigned as {child.pandaid}")
            new.append(child)
    where = f" at {exclude_site}" if exclude_site else ""
    return {
        "task_id": task.task_id,
        "status": task.status,
        "reassigned": len(new),
        "pandaids": [job.pandaid for job in new],
        "message": f"{len(new)} queued job(s){where} of task {task_id} closed and brokered again as new attempts"
        if new
        else f"task {task_id} has no queued job{where} that was not yet taken by a pilot; nothing to reassign",
    }


def _task_for(user, task_id, verb):
    task = Task.objects.select_for_update().filter(pk=task_id).first()
    if task is None:
        raise NotFound(f"no task {task_id}")
    if not may_manage(user, task):
        who = "a production manager or an admin" if task.type == TaskType.PRODUCTION else "its owner or an admin"
        raise PermissionDenied(f"you may not {verb} task {task_id}: only {who} may")
    return task


def _run_again(task, *, actor, reason):
    """A task that had ended (or was aborted) runs again: its output container takes new files."""
    if task.status in FINAL_TASK_STATES:
        system.reopen_container(task.output_dataset)
        status.change(task, TaskStatus.RUNNING, actor=actor, reason=reason)
        Task.objects.filter(pk=task.pk).update(ended_at=None)
        task.ended_at = None

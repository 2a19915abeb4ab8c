"""Killing jobs: queued jobs are cancelled at once, pilot-held ones get commandToPilot=tobekilled."""

from django.db import transaction

from pandamon import roles
from pandamon.errors import Conflict, NotFound, PermissionDenied

from ..choices import FINAL_STATES, PILOT_STATES, QUEUED_STATES, JobStatus
from ..models import Job
from . import state

KILL_COMMAND = "tobekilled"
# taskBufferErrorCode 100: killed (reference/panda-server.md §2).
KILLED_CODE = 100


def may_kill(user, job):
    if job.owner_id is not None and job.owner_id == user.pk:
        return True
    if roles.is_admin(user) or roles.has_role(user, roles.SHIFTER):
        return True
    return job.prod_source_label != "user" and roles.has_role(user, roles.PRODUCTION_MANAGER)


def kill_jobs(*, user, pandaids, reason=""):
    """Kill each job the user may kill; returns {pandaid: outcome} with one line per job.

    The whole call is refused (nothing changes) if any id is unknown or not the user's to kill.
    """
    with transaction.atomic():
        jobs = list(Job.objects.select_for_update().filter(pandaid__in=pandaids).order_by("pandaid"))
        _check_all_killable(user, pandaids, jobs)
        return {job.pandaid: _kill_one(job, user.username, reason) for job in jobs}


def kill_locked(jobs, *, actor, reason=""):
    """Kill jobs the caller has locked and checked (e.g. a task's jobs); returns counts by outcome.

    Queued jobs are cancelled at once, pilot-held ones get the kill command; in few statements.
    """
    why = f"killed by {actor}" + (f": {reason}" if reason else "")
    queued = [job for job in jobs if job.status in QUEUED_STATES]
    pilot_held = [job for job in jobs if job.status in PILOT_STATES]
    held = [job.pandaid for job in pilot_held if job.command_to_pilot != KILL_COMMAND]
    state.transition_many(queued, JobStatus.CANCELLED, actor=actor, reason=why,
                          task_buffer_error_code=KILLED_CODE, task_buffer_error_diag=why[:300])  # fmt: skip
    Job.objects.filter(pandaid__in=held).update(
        command_to_pilot=KILL_COMMAND, task_buffer_error_code=KILLED_CODE, task_buffer_error_diag=why[:300]
    )
    return {"cancelled": len(queued), "kill_command_sent": len(held),
            "already_being_killed": len(pilot_held) - len(held)}  # fmt: skip


def _check_all_killable(user, pandaids, jobs):
    found = {job.pandaid for job in jobs}
    missing = sorted(set(pandaids) - found)
    if missing:
        raise NotFound(f"no job with PandaID {', '.join(map(str, missing[:20]))}")
    refused = [job.pandaid for job in jobs if not may_kill(user, job)]
    if refused:
        raise PermissionDenied(
            f"you may not kill job(s) {', '.join(map(str, refused[:20]))}: "
            "only the owner, a shifter, an admin or (for production jobs) a production manager may"
        )


def _kill_one(job, actor, reason):
    why = f"killed by {actor}" + (f": {reason}" if reason else "")
    if job.status in FINAL_STATES:
        return f"already {job.status}"
    if job.status in QUEUED_STATES:
        state.transition(
            job, JobStatus.CANCELLED, actor=actor, reason=why,
            task_buffer_error_code=KILLED_CODE, task_buffer_error_diag=why[:300],
        )  # fmt: skip
        return "cancelled"
    if job.status in PILOT_STATES:
        Job.objects.filter(pandaid=job.pandaid).update(
            command_to_pilot=KILL_COMMAND, task_buffer_error_code=KILLED_CODE, task_buffer_error_diag=why[:300]
        )
        return "kill command sent to the pilot"
    raise Conflict(f"job {job.pandaid} in state {job.status} cannot be killed")

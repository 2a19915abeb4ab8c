"""Retries: a failed job is never revived; a retry is a new job (new PandaID, attemptNr+1)."""

import uuid

from django.db import transaction
from django.utils import timezone

from pandamon.errors import Conflict, NotFound, PermissionDenied
from tasks.choices import TaskStatus

from ..choices import FileStatus, FileType, JobStatus
from ..models import Job, JobFile, JobStatusLog
from . import kill, retry_rules, state
from .signatures import store_signatures

COPIED_FIELDS = (
    "job_name", "job_definition_id", "jobset_id", "task_id", "req_id", "prod_source_label",
    "processing_type", "transformation", "job_parameters", "homepackage", "sw_release", "cmt_config",
    "container_name", "app", "special_handling", "owner_id", "prod_user_id", "prod_user_name",
    "working_group", "source_group", "vo", "country_group", "cloud", "destination_se", "core_count",
    "min_ram_count", "max_disk_count", "max_cpu_count", "max_walltime", "assigned_priority",
    "current_priority", "max_attempt", "n_input_files",
)  # fmt: skip
# Requirements a retry decision may change for the next attempt.
OVERRIDABLE = frozenset({"min_ram_count", "max_walltime", "max_attempt"})
ACTOR = "retry-module"


def retry_if_eligible(job, *, rules=None):
    """After a job failed (Adder, watchers): let the retry rules decide; returns the new Job or None.

    The decision is appended to the reason of the job's failure in its state log, e.g.
    "...; retried as 1234 (rule 7: increase_memory +1000 MB (2000 → 3000 MB); attempt 2 of at most 3)"
    or "...; not retried (rule 3: no_retry)". Jobs that were being killed, jobs of an aborted or
    broken task and jobs already retried are left alone.
    """
    if job.status != JobStatus.FAILED:
        return None
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pandaid=job.pandaid, status=JobStatus.FAILED).first()
        if job is None or Job.objects.filter(parent_id=job.pandaid).exists():
            return None
        task = task_of(job)
        if job.command_to_pilot == kill.KILL_COMMAND:
            decision = retry_rules.Decision(False, "the job was being killed")
        elif task is not None and task.status in TASK_STATES_WITHOUT_RETRY:
            decision = retry_rules.Decision(False, f"its task {task.task_id} is {task.status}")
        else:
            decision = retry_rules.decide(job, rules)
        if not decision.retry:
            annotate_last_change(job, f"not retried ({decision.why})")
            return None
        new = retry_job(job, actor=ACTOR, keep_site=pins_site(task), overrides=decision.overrides,
                        reason=decision.why)  # fmt: skip
        annotate_last_change(job, f"retried as {new.pandaid} ({decision.why})")
        reopen_task_output(task)  # in case the roll-up ended the task in between
    return new


def retry_for_user(*, user, pandaid):
    """A person's retry: allowed to whoever may kill the job (its owner, a shifter, an admin,
    a production manager for production jobs). Not limited by max_attempt; refused for a job of
    an aborted or broken task (retry the task instead)."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pandaid=pandaid).first()
        if job is None:
            raise NotFound(f"no job with PandaID {pandaid}")
        if not kill.may_kill(user, job):
            raise PermissionDenied(
                f"you may not retry job {pandaid}: only its owner, a shifter, an admin "
                "or (for production jobs) a production manager may"
            )
        task = task_of(job)
        if task is not None and task.status in TASK_STATES_WITHOUT_RETRY:
            raise Conflict(f"job {pandaid} belongs to task {task.task_id}, which is {task.status}; "
                           "retry the task rather than its jobs")  # fmt: skip
        new = retry_job(job, actor=user.username, reason=f"by {user.username}")
        reopen_task_output(task)
        return new


@transaction.atomic
def retry_job(job, *, actor, keep_site=True, overrides=None, reason=""):
    """Create the next attempt of a failed, cancelled or closed job; returns the new Job.

    `overrides` changes requirements of the new attempt (min_ram_count, max_walltime, max_attempt);
    `reason` is added to the new attempt's creation entry in the state log.
    """
    if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.CLOSED):
        raise Conflict(f"job {job.pandaid} is {job.status}; only failed, cancelled or closed jobs can be retried")
    if Job.objects.filter(parent_id=job.pandaid).exists():
        raise Conflict(f"job {job.pandaid} was already retried")
    unknown = set(overrides or ()) - OVERRIDABLE
    if unknown:
        raise ValueError(f"a retry cannot change {', '.join(sorted(unknown))}")
    now = timezone.now()
    new = Job(**{name: getattr(job, name) for name in COPIED_FIELDS})
    for name, value in (overrides or {}).items():
        setattr(new, name, value)
    new.attempt_nr = job.attempt_nr + 1
    new.parent_id = job.pandaid
    new.computing_site_id = job.computing_site_id if keep_site else None
    new.status = JobStatus.DEFINED
    new.creation_time = new.modification_time = new.state_change_time = now
    new.save()
    store_signatures([new], JobFile.objects.bulk_create(_next_attempt_files(job, new)))
    why = f"retry of {job.pandaid}" + (f" ({reason})" if reason else "")
    state.record_creation([new], actor=actor, reason=why[:500], now=now)
    transaction.on_commit(_queue_brokerage)
    return new


def annotate_last_change(job, text):
    """Add `text` to the reason of the job's latest state change (keeping `text` whole)."""
    entry = JobStatusLog.objects.filter(job_id=job.pandaid).order_by("-changed_at", "-id").first()
    if entry is None:
        return
    head = entry.reason[: max(0, 500 - len(text) - 2)]
    entry.reason = (f"{head}; {text}" if head else text)[:500]
    entry.save(update_fields=["reason"])


# -- the job's task ---------------------------------------------------------------------------------

# A task in these states takes no new attempts of its jobs (its owner may retry the task).
TASK_STATES_WITHOUT_RETRY = (TaskStatus.ABORTED, TaskStatus.BROKEN)


def task_of(job):
    if not job.task_id:
        return None
    from tasks.models import Task  # the tasks app builds on this one

    return Task.objects.filter(pk=job.task_id).first()


def pins_site(task):
    """New attempts of a task that runs only at one site stay there."""
    return bool(task is not None and task.site)


def reopen_task_output(task):
    """A new attempt of an ended task's job writes into the task's output container again."""
    if task is not None and task.status in (TaskStatus.DONE, TaskStatus.FINISHED, TaskStatus.FAILED):
        from datasets.services import system

        system.reopen_container(task.output_dataset)


def _next_attempt_files(job, new):
    files = []
    for old in JobFile.objects.filter(job=job).order_by("id"):
        is_input = old.type in (FileType.INPUT, FileType.PSEUDO_INPUT)
        files.append(
            JobFile(
                job=new, type=old.type, lfn=old.lfn if is_input or old.type == FileType.OUTPUT else _log_name(old, new),
                guid=old.guid if is_input else "", scope=old.scope, dataset=old.dataset,
                prod_dblock=old.prod_dblock, destination_dblock=old.destination_dblock,
                fsize=old.fsize if is_input else None, checksum=old.checksum if is_input else "",
                status=FileStatus.READY if is_input else FileStatus.UNKNOWN, attempt_nr=new.attempt_nr,
            )
        )  # fmt: skip
    for job_file in files:
        if not job_file.guid and job_file.type != FileType.INPUT:
            job_file.guid = str(uuid.uuid4())
    return files


def _log_name(old, new):
    return f"{old.lfn.removesuffix('.log.tgz')}.{new.attempt_nr}.log.tgz"


def _queue_brokerage():
    from ..tasks import broker_defined_jobs

    broker_defined_jobs.delay()

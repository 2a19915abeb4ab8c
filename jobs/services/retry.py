"""Retries: a failed job is never revived; a retry is a new job (new PandaID, attemptNr+1)."""

import uuid

from django.db import transaction
from django.utils import timezone

from pandamon.errors import Conflict, NotFound, PermissionDenied

from ..choices import FileStatus, FileType, JobStatus
from ..models import Job, JobFile
from . import kill, state

# Failures caused by the system rather than the payload: retried automatically.
AUTO_RETRY_DISPATCHER_CODES = {100, 102}
COPIED_FIELDS = (
    "job_name", "job_definition_id", "jobset_id", "task_id", "req_id", "prod_source_label",
    "processing_type", "transformation", "job_parameters", "homepackage", "sw_release", "cmt_config",
    "container_name", "app", "special_handling", "owner_id", "prod_user_id", "prod_user_name",
    "working_group", "source_group", "vo", "country_group", "cloud", "destination_se", "core_count",
    "min_ram_count", "max_disk_count", "max_cpu_count", "max_walltime", "assigned_priority",
    "current_priority", "max_attempt", "n_input_files",
)  # fmt: skip


def retry_if_eligible(job):
    """Automatic retry after a system failure (lost heartbeat, sent timeout), within maxAttempt."""
    if job.status != JobStatus.FAILED or job.job_dispatcher_error_code not in AUTO_RETRY_DISPATCHER_CODES:
        return None
    if job.attempt_nr >= job.max_attempt or Job.objects.filter(parent_id=job.pandaid).exists():
        return None
    return retry_job(job, actor="retry-module", keep_site=False)


def retry_for_user(*, user, pandaid):
    """A person's retry: allowed to whoever may kill the job (its owner, a shifter, an admin,
    a production manager for production jobs)."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pandaid=pandaid).first()
        if job is None:
            raise NotFound(f"no job with PandaID {pandaid}")
        if not kill.may_kill(user, job):
            raise PermissionDenied(
                f"you may not retry job {pandaid}: only its owner, a shifter, an admin "
                "or (for production jobs) a production manager may"
            )
        return retry_job(job, actor=user.username)


@transaction.atomic
def retry_job(job, *, actor, keep_site=True):
    """Create the next attempt of a failed or cancelled job; returns the new Job."""
    if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.CLOSED):
        raise Conflict(f"job {job.pandaid} is {job.status}; only failed, cancelled or closed jobs can be retried")
    if Job.objects.filter(parent_id=job.pandaid).exists():
        raise Conflict(f"job {job.pandaid} was already retried")
    now = timezone.now()
    new = Job(**{name: getattr(job, name) for name in COPIED_FIELDS})
    new.attempt_nr = job.attempt_nr + 1
    new.parent_id = job.pandaid
    new.computing_site_id = job.computing_site_id if keep_site else None
    new.status = JobStatus.DEFINED
    new.creation_time = new.modification_time = new.state_change_time = now
    new.save()
    JobFile.objects.bulk_create(_next_attempt_files(job, new))
    state.record_creation([new], actor=actor, reason=f"retry of {job.pandaid}", now=now)
    transaction.on_commit(_queue_brokerage)
    return new


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

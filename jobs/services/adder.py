"""The Adder: turns a holding job's final pilot report into its final state.

Runs as a Celery task queued when the final report arrives (and re-queued by a
periodic sweep if that message was lost). Idempotent: a job no longer holding is left alone.
"""

from django.db import transaction
from django.utils import timezone

from pandamon.errors import ServiceError

from ..choices import FileStatus, FileType, JobStatus
from ..models import Job, JobFile, JobReport
from . import retry, setupper, state
from .kill import KILL_COMMAND

ADDER_MISSING_OUTPUT = 200
ADDER_REGISTRATION_FAILED = 201


def finalize_job(pandaid):
    """Record outputs and set finished / failed / cancelled. Returns the final state or None."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pandaid=pandaid, status=JobStatus.HOLDING).first()
        if job is None:
            return None
        report = JobReport.objects.filter(job=job).first()
        final, fields, reason = _outcome(job, report)
        _record_files(job, report, final)
        destinations = []
        if final == JobStatus.FINISHED:
            final, fields, reason, destinations = _catalogue_outputs(job)
        state.transition(job, final, actor="adder", reason=reason, **fields)
        if destinations:
            setupper.await_archival(job, job.computing_site, destinations)
        if report is not None:
            JobReport.objects.filter(job=job).update(processed_at=timezone.now())
        # In the same transaction: whoever reads the log (the task roll-up) never sees a failed job
        # whose retry is still to come, and so never ends its task in between.
        retry.retry_if_eligible(job)
    return final


def _catalogue_outputs(job):
    """Register the outputs in their destination datasets at the job's site.

    Returns (state, fields, reason, destination datasets to archive): transferring while
    outputs must still reach the Tier-1, finished when they need not, failed when refused.
    """
    try:
        with transaction.atomic():
            destinations = setupper.register_outputs(job, job.computing_site)
    except ServiceError as exc:
        diag = f"registering the outputs failed: {exc.message}"
        return JobStatus.FAILED, {"ddm_error_code": ADDER_REGISTRATION_FAILED, "ddm_error_diag": diag[:500]}, diag, []
    if destinations:
        names = ", ".join(d.name for d in destinations)
        return JobStatus.TRANSFERRING, {}, f"outputs recorded; waiting for archival of {names}"[:500], destinations
    return JobStatus.FINISHED, {}, "outputs recorded", []


def _outcome(job, report):
    if job.command_to_pilot == KILL_COMMAND:
        return JobStatus.CANCELLED, {}, job.task_buffer_error_diag or "killed"
    if report is None:
        return (
            JobStatus.FAILED,
            {"ddm_error_code": ADDER_MISSING_OUTPUT, "ddm_error_diag": "no pilot report"},
            "no report",
        )
    if report.reported_state != "finished":
        return JobStatus.FAILED, {}, "pilot reported failed"
    missing = _missing_outputs(job, report)
    if missing:
        diag = f"output file(s) missing from the pilot's report: {', '.join(missing[:5])}"
        return JobStatus.FAILED, {"ddm_error_code": ADDER_MISSING_OUTPUT, "ddm_error_diag": diag[:500]}, diag
    return JobStatus.FINISHED, {}, "outputs recorded"


def _missing_outputs(job, report):
    expected = JobFile.objects.filter(job=job, type=FileType.OUTPUT).values_list("lfn", flat=True)
    return [lfn for lfn in expected if lfn not in report.output_files]


def _record_files(job, report, final):
    reported = report.output_files if report is not None else {}
    files = list(JobFile.objects.filter(job=job, type__in=(FileType.OUTPUT, FileType.LOG)))
    for job_file in files:
        attributes = reported.get(job_file.lfn)
        if attributes is None:
            job_file.status = FileStatus.FAILED if final != JobStatus.FINISHED else FileStatus.NOOUTPUT
            continue
        job_file.status = FileStatus.READY
        job_file.guid = str(attributes.get("guid") or job_file.guid)[:64]
        job_file.fsize = _int_or_none(attributes.get("fsize"))
        adler32 = attributes.get("adler32") or attributes.get("checksum")
        job_file.checksum = f"ad:{adler32}" if adler32 and not str(adler32).startswith("ad:") else (adler32 or "")
        job_file.surl = str(attributes.get("surl") or "")[:500]
    JobFile.objects.bulk_update(files, ["status", "guid", "fsize", "checksum", "surl"])


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None

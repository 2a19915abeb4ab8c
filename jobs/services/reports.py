"""Pilot reports: updateJob (heartbeats, final reports) and getStatus.

A report never rolls a job back: late or repeated reports are answered
`alreadydone` and change nothing, so pilots may safely resend. A report may
also carry job-control answers (peeks, a debug stdout tail), and the answer
to a heartbeat carries what the job's controllers asked for (jobs.services.peek).
"""

import json
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from pandamon.errors import InvalidInput, PermissionDenied

from ..choices import FINAL_STATES, JobStatus
from ..models import Job, JobReport
from . import peek, state

# What updateJob accepts; anything else is answered without a change (as PanDA does).
REPORTABLE_STATES = {"starting", "running", "holding", "transferring", "finished", "failed"}
FINAL_REPORTS = {"finished", "failed"}
COMMAND_NONE = "NULL"
COMMAND_KILL = "tobekilled"
COMMAND_ALREADY_DONE = "alreadydone"
COMMAND_DEBUG = "debug"


@dataclass
class PilotReport:
    """One updateJob call, already parsed into typed values."""

    pandaid: int
    state: str
    node: str = ""
    attempt_nr: int | None = None
    output_files: dict | None = None
    pilot_log: str = ""
    fields: dict = field(default_factory=dict)
    peek_answers: dict = field(default_factory=dict)  # peek request id -> the pilot's text
    debug_stdout: str = ""  # PanDA's `stdout`: the payload's stdout tail, sent in debug mode


@dataclass
class PilotAnswer:
    """What updateJob answers: the command, and job-control keys for this project's pilots."""

    command: str = COMMAND_NONE
    extra: dict = field(default_factory=dict)  # peek, peekInterval (pilot3 ignores unknown keys)


def parse_output_report(raw):
    """The final update's `xml` parameter: a JSON object lfn -> {guid, fsize, adler32, surl}."""
    if not raw:
        return None
    try:
        report = json.loads(raw)
    except ValueError as exc:
        raise InvalidInput(f"xml is not valid JSON: {exc}") from None
    if not isinstance(report, dict) or not all(isinstance(v, dict) for v in report.values()):
        raise InvalidInput("xml must be a JSON object mapping each file name to its attributes")
    return report


def update_job(*, site_ids, report):
    """Apply one pilot report; returns the PilotAnswer (command NULL, tobekilled, debug, alreadydone)."""
    if report.state not in REPORTABLE_STATES:
        return PilotAnswer()
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pandaid=report.pandaid).first()
        if job is None:
            return PilotAnswer(COMMAND_KILL)
        if job.computing_site_id not in site_ids:
            raise PermissionDenied(f"job {job.pandaid} does not run at a site of this pilot")
        if report.attempt_nr is not None and report.attempt_nr != job.attempt_nr:
            return PilotAnswer(COMMAND_KILL)
        if job.status in FINAL_STATES:
            return PilotAnswer(COMMAND_ALREADY_DONE)
        now = timezone.now()
        peek.record_from_pilot(job=job, answers=report.peek_answers, debug_stdout=report.debug_stdout, now=now)
        if report.state in FINAL_REPORTS:
            return PilotAnswer(_final_report(job, report))
        command = _progress_report(job, report)
        if command == COMMAND_ALREADY_DONE:
            return PilotAnswer(command)
        return PilotAnswer(command, peek.for_pilot(job=job, now=now))


def _command_for(job):
    """A kill wins over debug mode (pilot3 reads `debug,tobekilled` as a kill anyway)."""
    if job.command_to_pilot:
        return job.command_to_pilot
    return COMMAND_DEBUG if job.debug_mode else COMMAND_NONE


def _progress_report(job, report):
    now = timezone.now()
    reported = JobStatus(report.state)
    fields = dict(report.fields, modification_host=report.node[:128] or job.modification_host)
    if reported == JobStatus.RUNNING and job.start_time is None:
        fields["start_time"] = now
    if reported == job.status:
        Job.objects.filter(pandaid=job.pandaid).update(modification_time=now, **fields)
        return _command_for(job)
    if state.PROGRESS_RANK[reported] < state.PROGRESS_RANK[job.status] or not state.is_allowed(job.status, reported):
        # Late or out-of-order report: never roll the job back.
        return COMMAND_ALREADY_DONE
    state.transition(
        job, reported, actor=_pilot_actor(report), reason=f"pilot reported {report.state}", now=now, **fields
    )
    return _command_for(job)


def _final_report(job, report):
    if job.status in (JobStatus.HOLDING, JobStatus.MERGING, JobStatus.TRANSFERRING):
        _complete_repeated_report(job, report)
        return COMMAND_ALREADY_DONE
    now = timezone.now()
    state.transition(
        job, JobStatus.HOLDING, actor=_pilot_actor(report), reason=f"pilot reported {report.state}", now=now,
        end_time=now, modification_host=report.node[:128] or job.modification_host, **report.fields,
    )  # fmt: skip
    JobReport.objects.update_or_create(
        job=job,
        defaults={
            "reported_state": report.state,
            "output_files": report.output_files or {},
            "pilot_log": report.pilot_log[-20000:],
            "received_at": now,
            "processed_at": None,
        },
    )
    peek.expire_for_job(job=job, now=now, why=f"the job ended ({report.state}) before its pilot answered")
    transaction.on_commit(lambda: _queue_adder(job.pandaid))
    return COMMAND_NONE


def _complete_repeated_report(job, report):
    """A repeated final report may carry the file list the first one lacked (pilot#180)."""
    if not report.output_files or job.status != JobStatus.HOLDING:
        return
    JobReport.objects.filter(job=job, output_files={}).update(output_files=report.output_files)


def _queue_adder(pandaid):
    from ..tasks import finalize_job

    finalize_job.delay(pandaid)


def _pilot_actor(report):
    return f"pilot@{report.node or 'unknown'}"


def job_statuses(pandaids):
    """getStatus: (status, attemptNr) for each id, 'notfound' for unknown ones, in order."""
    found = dict(
        (pid, (status, attempt))
        for pid, status, attempt in Job.objects.filter(pandaid__in=pandaids).values_list(
            "pandaid", "status", "attempt_nr"
        )
    )
    return [found.get(pid, ("notfound", 0)) for pid in pandaids]

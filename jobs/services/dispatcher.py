"""The job dispatcher: what pilots call (getJob, updateJob, getStatus).

getJob hands each activated job to exactly one pilot: candidates are locked with
SELECT ... FOR UPDATE SKIP LOCKED (PostgreSQL), so concurrent pilots of a site
take different jobs instead of waiting on each other. On SQLite the settings
make every transaction IMMEDIATE, which serialises dispatchers instead.
"""

import json
from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from pandamon.cache import TtlCache
from pandamon.errors import InvalidInput, PermissionDenied
from sites.choices import SiteStatus

from ..choices import FINAL_STATES, PILOT_LABEL_MAP, JobStatus
from ..models import Job, JobFile, JobReport
from . import state

RUNNING_LIKE = (JobStatus.SENT, JobStatus.STARTING, JobStatus.RUNNING)
_running_counts = TtlCache(lambda: settings.PANDA["RUNNING_COUNT_CACHE_SECONDS"])

# What updateJob accepts; anything else is answered without a change (as PanDA does).
REPORTABLE_STATES = {"starting", "running", "holding", "transferring", "finished", "failed"}
FINAL_REPORTS = {"finished", "failed"}
COMMAND_NONE = "NULL"
COMMAND_KILL = "tobekilled"
COMMAND_ALREADY_DONE = "alreadydone"


@dataclass
class PilotRequest:
    """What a pilot told us about itself when asking for work."""

    node: str = ""
    n_jobs: int = 1
    memory_mb: int | None = None
    disk_mb: int | None = None
    prod_source_label: str | None = None


def dispatch_jobs(*, site, request):
    """Lock and send up to `request.n_jobs` of the site's best activated jobs; returns them with files.

    Returns (jobs, reason): no jobs and a reason when the site may not take more.
    """
    if site.status == SiteStatus.OFFLINE:
        return [], f"site {site.name} is offline"
    n_jobs = _room_at(site, request.n_jobs)
    if n_jobs <= 0:
        return [], f"site {site.name} is at its limit of {site.max_running_jobs} running jobs"
    candidates = _candidates(site, request)
    with transaction.atomic():
        jobs = list(candidates.select_for_update(skip_locked=True)[:n_jobs])
        if not jobs:
            return [], f"no activated job for site {site.name}"
        state.transition_many(
            jobs, JobStatus.SENT, actor=f"pilot@{request.node or 'unknown'}", reason="sent to a pilot",
            modification_host=request.node[:128], n_sent=F("n_sent") + 1,
        )  # fmt: skip
    for job in jobs:
        job.n_sent += 1
    _attach_files(jobs)
    return jobs, ""


def _running_at(site_id):
    return Job.objects.filter(computing_site_id=site_id, status__in=RUNNING_LIKE).count()


def _room_at(site, wanted):
    """How many more jobs the site may start under max_running_jobs (0 = no limit).

    The count is cached per process for a few seconds, so a site can overshoot its
    limit by the jobs dispatched within that time; the limit is a safety valve,
    the pilot factory is what keeps a site at its size.
    """
    if not site.max_running_jobs:
        return wanted
    running = _running_counts.get(site.pk, lambda: _running_at(site.pk))
    return min(wanted, site.max_running_jobs - running)


def _candidates(site, request):
    queryset = Job.objects.filter(status=JobStatus.ACTIVATED, computing_site=site)
    labels = _labels_for(site, request.prod_source_label)
    if labels is not None:
        queryset = queryset.filter(prod_source_label__in=labels)
    if request.memory_mb:
        queryset = queryset.filter(min_ram_count__lte=request.memory_mb)
    if request.disk_mb:
        queryset = queryset.filter(max_disk_count__lte=request.disk_mb)
    return queryset.order_by("-current_priority", "pandaid")


def _labels_for(site, label):
    if site.status == SiteStatus.TEST:
        # A queue in test status runs only test jobs (PanDA relabels user/managed as test).
        return PILOT_LABEL_MAP["test"]
    if not label:
        return None
    return PILOT_LABEL_MAP.get(label, (label,))


def _attach_files(jobs):
    files_by_job = defaultdict(list)
    for job_file in JobFile.objects.filter(job_id__in=[job.pandaid for job in jobs]).order_by("id"):
        files_by_job[job_file.job_id].append(job_file)
    for job in jobs:
        job.dispatched_files = files_by_job[job.pandaid]


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
    """Apply one pilot report; returns the command for the pilot (NULL, tobekilled, alreadydone)."""
    if report.state not in REPORTABLE_STATES:
        return COMMAND_NONE
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pandaid=report.pandaid).first()
        if job is None:
            return COMMAND_KILL
        if job.computing_site_id not in site_ids:
            raise PermissionDenied(f"job {job.pandaid} does not run at a site of this pilot")
        if report.attempt_nr is not None and report.attempt_nr != job.attempt_nr:
            return COMMAND_KILL
        if job.status in FINAL_STATES:
            return COMMAND_ALREADY_DONE
        if report.state in FINAL_REPORTS:
            return _final_report(job, report)
        return _progress_report(job, report)


def _progress_report(job, report):
    now = timezone.now()
    reported = JobStatus(report.state)
    fields = dict(report.fields, modification_host=report.node[:128] or job.modification_host)
    if reported == JobStatus.RUNNING and job.start_time is None:
        fields["start_time"] = now
    if reported == job.status:
        Job.objects.filter(pandaid=job.pandaid).update(modification_time=now, **fields)
        return job.command_to_pilot or COMMAND_NONE
    if state.PROGRESS_RANK[reported] < state.PROGRESS_RANK[job.status] or not state.is_allowed(job.status, reported):
        # Late or out-of-order report: never roll the job back.
        return COMMAND_ALREADY_DONE
    state.transition(
        job, reported, actor=_pilot_actor(report), reason=f"pilot reported {report.state}", now=now, **fields
    )
    return job.command_to_pilot or COMMAND_NONE


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

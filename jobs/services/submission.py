"""Job submission: validated job specs in, PandaIDs out, all or nothing."""

import uuid

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from pandamon import roles
from pandamon.errors import InvalidInput, PermissionDenied
from pandamon.models import Identity
from sites.models import Site

from ..choices import LIVE_STATES, FileStatus, FileType, JobStatus
from ..models import Job, JobFile
from . import state
from .signatures import store_signatures

# Labels that run production resources; only production managers may submit them.
PRODUCTION_LABELS = {"managed", "test", "prod_test", "ptest", "install"}
# Priorities (reference/panda-server.md §5.1; docs/brokerage.md "Priorities"). Production jobs keep the
# priority they are given (a task's jobs get the task's). Analysis jobs of people without the production
# role are capped at USER_MAX_PRIORITY (PanDA keeps analysis tasks in 900..1100) and lose one unit per
# five of the owner's queued or running jobs. Test jobs, which validate sites and releases, go first.
DEFAULT_PRIORITY = 1000
USER_MAX_PRIORITY = 1100
TEST_LABELS = {"test", "prod_test", "ptest"}
TEST_PRIORITY_BOOST = 1000
EXPRESS_PRIORITY = 6000  # production jobs with special_handling "express" (PanDA's express stream)
JOB_FIELDS = (
    "job_name", "transformation", "job_parameters", "prod_source_label", "processing_type",
    "cloud", "core_count", "min_ram_count", "max_disk_count", "max_walltime", "max_cpu_count",
    "max_attempt", "task_id", "jobset_id", "job_definition_id", "working_group", "vo",
    "sw_release", "homepackage", "cmt_config", "container_name", "special_handling", "app",
)  # fmt: skip


# Checks that higher layers (quotas) register; each runs inside the submission transaction with
# the built, not yet inserted jobs, and may refuse (raise a ServiceError) or lower priorities.
_submission_checks = []


def register_submission_check(check):
    """`check(submitter=..., jobs=[Job, ...])`; registering the same check twice has no effect."""
    if check not in _submission_checks:
        _submission_checks.append(check)


def submit_jobs(*, submitter, specs):
    """Insert the jobs described by `specs` (validated dicts); returns their PandaIDs in order.

    Either every job is inserted or none is. Brokerage is queued after commit.
    """
    limit = settings.PANDA["MAX_JOBS_PER_SUBMISSION"]
    if not specs:
        raise InvalidInput("no jobs given")
    if len(specs) > limit:
        raise InvalidInput(f"{len(specs)} jobs in one call; at most {limit} are accepted")
    _check_labels(submitter, specs)
    production_role = roles.has_role(submitter, roles.PRODUCTION_MANAGER)
    sites = _resolve_sites(specs)
    now = timezone.now()
    with transaction.atomic():
        serial = _queued_user_jobs(submitter)
        dn = _submitter_dn(submitter)
        jobs = [
            _build_job(spec, submitter, sites, now, serial + index, production_role) for index, spec in enumerate(specs)
        ]
        for job in jobs:
            job.prod_user_id = dn
        for check in _submission_checks:
            check(submitter=submitter, jobs=jobs)
        Job.objects.bulk_create(jobs, batch_size=1000)
        files = JobFile.objects.bulk_create(_build_files(jobs, specs), batch_size=2000)
        store_signatures(jobs, files)
        state.record_creation(jobs, actor=submitter.username, now=now)
        transaction.on_commit(_queue_brokerage)
    return [job.pandaid for job in jobs]


def _queue_brokerage():
    from ..tasks import broker_defined_jobs

    broker_defined_jobs.delay()


def _check_labels(submitter, specs):
    for index, spec in enumerate(specs):
        label = spec.get("prod_source_label", "user")
        if label in PRODUCTION_LABELS and not roles.has_role(submitter, roles.PRODUCTION_MANAGER):
            raise PermissionDenied(
                f"jobs[{index}]: prod_source_label '{label}' needs the {roles.PRODUCTION_MANAGER} role"
            )


def _resolve_sites(specs):
    names = {spec["computing_site"] for spec in specs if spec.get("computing_site")}
    sites = {site.name: site for site in Site.objects.filter(name__in=names).select_related("cloud")}
    for index, spec in enumerate(specs):
        name = spec.get("computing_site")
        if name and name not in sites:
            raise InvalidInput(f"jobs[{index}].computing_site: unknown site '{name}'")
    return sites


def _submitter_dn(submitter):
    """The DN PanDA records as prodUserID: the submitter's registered grid identity, never the request's."""
    return Identity.objects.filter(user=submitter).values_list("dn", flat=True).first() or ""


def _queued_user_jobs(submitter):
    """PanDA's serNum: the user's jobs still queued or running, which lower new jobs' priority."""
    return Job.objects.filter(owner=submitter, prod_source_label="user").filter(status__in=LIVE_STATES).count()


def _build_job(spec, submitter, sites, now, serial, production_role):
    job = Job(**{name: spec[name] for name in JOB_FIELDS if spec.get(name) is not None})
    job.owner = submitter
    job.prod_user_name = submitter.username
    job.status = JobStatus.DEFINED
    job.creation_time = job.modification_time = job.state_change_time = now
    site = sites.get(spec.get("computing_site") or "")
    if site is not None:
        job.computing_site = site
        job.cloud = job.cloud or site.cloud.name
    job.assigned_priority = _assigned_priority(job, spec.get("priority"), production_role)
    job.current_priority = _initial_priority(job, serial)
    job.n_input_files = len(spec.get("input_files", ()))
    return job


def _assigned_priority(job, requested, production_role):
    """The priority asked for; an analysis job of someone without the production role gets at most 1100."""
    priority = DEFAULT_PRIORITY if requested is None else requested
    if job.prod_source_label not in PRODUCTION_LABELS and not production_role:
        priority = min(priority, USER_MAX_PRIORITY)
    return priority


def _initial_priority(job, serial):
    """PanDA PrioUtil: user jobs lose one unit per five of the owner's queued jobs; test jobs get a boost;
    express production jobs jump to EXPRESS_PRIORITY."""
    if job.prod_source_label == "user":
        return job.assigned_priority - serial // 5
    if job.prod_source_label in PRODUCTION_LABELS and job.special_handling == "express":
        return max(job.assigned_priority, EXPRESS_PRIORITY)
    if job.prod_source_label in TEST_LABELS:
        return job.assigned_priority + TEST_PRIORITY_BOOST
    return job.assigned_priority


def _build_files(jobs, specs):
    files = []
    for job, spec in zip(jobs, specs, strict=True):
        for item in spec.get("input_files", ()):
            files.append(_file(job, FileType.INPUT, item, FileStatus.READY))
        for item in spec.get("output_files", ()):
            files.append(_file(job, FileType.OUTPUT, item, FileStatus.UNKNOWN))
        files.append(_log_file(job, spec))
    return files


def _file(job, file_type, item, status):
    dataset = item.get("dataset", "")
    return JobFile(
        job=job,
        type=file_type,
        lfn=item["lfn"],
        guid=item.get("guid") or (str(uuid.uuid4()) if file_type != FileType.INPUT else ""),
        scope=item.get("scope", ""),
        dataset=dataset,
        prod_dblock=dataset if file_type == FileType.INPUT else "",
        destination_dblock=dataset if file_type != FileType.INPUT else "",
        fsize=item.get("fsize"),
        checksum=item.get("checksum", ""),
        status=status,
        attempt_nr=job.attempt_nr,
    )


def _log_file(job, spec):
    guid = str(uuid.uuid4())
    item = {"lfn": spec.get("log_file") or f"{job.job_name}.{guid[:8]}.log.tgz", "guid": guid}
    item["dataset"] = spec.get("log_dataset", "")
    return _file(job, FileType.LOG, item, FileStatus.UNKNOWN)

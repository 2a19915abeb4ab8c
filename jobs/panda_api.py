"""PanDA API v1 job and system functions for the unchanged panda-client 2.2 (docs/panda-compat.md).

Thin translations onto our services: submissions go through jobs.services.submission and kills
through jobs.services.kill, exactly as our own REST API does; only the shapes are PanDA's
(jobs/panda_jobspec.py). `job/set_debug_mode` is our job debug mode (docs/job-control.md).
"""

from pandamon.errors import InvalidInput
from pandamon.panda_api import PandaEndpoint, envelope, failure, int_list_param, int_param, require_user

from . import panda_jobspec
from .choices import FINAL_STATES
from .models import Job, JobFile
from .services import kill, peek, submission

# At most this many ids per call (PanDA itself truncates at 5500).
MAX_JOB_IDS = 10000
# PandaIDs are bigints; a larger id cannot exist, and PostgreSQL would refuse to compare it.
MAX_PANDAID = 2**63 - 1


class SubmitJobs(PandaEndpoint):
    """`job/submit`: {"jobs": "<JSON string of positional JobSpecs>"} -> [[PandaID, jobDefinitionID, jobName], ...]."""

    def call(self, request, params):
        user = require_user(request)
        if "jobs" not in params:
            raise InvalidInput("jobs is required: a JSON list of jobs, as panda-client's submitJobs sends")
        # Everything is parsed and validated before the single write, so a bad job writes nothing.
        specs = panda_jobspec.validate_specs(panda_jobspec.parse_jobs(params["jobs"]))
        if not specs:
            return failure("No jobs were submitted")
        pandaids = submission.submit_jobs(submitter=user, specs=specs)
        answers = zip(pandaids, specs, strict=True)
        return envelope([[pandaid, spec.get("job_definition_id"), spec["job_name"]] for pandaid, spec in answers])


class JobDescriptions(PandaEndpoint):
    """`job/get_description`: {"job_ids": [...]} -> one JobSpec dict per id, in order, null if unknown.

    We keep no separate archive, so `job/get_description_incl_archive` is the same function."""

    def call(self, request, params):
        pandaids = int_list_param(params, "job_ids", limit=MAX_JOB_IDS)
        described = describe_jobs(pandaids)
        return envelope([described.get(pandaid) for pandaid in pandaids])


def describe_jobs(pandaids):
    """{pandaid: description} for the jobs that exist, in two queries (jobs, then all their files)."""
    wanted = {pandaid for pandaid in pandaids if 0 < pandaid <= MAX_PANDAID}
    jobs = list(Job.objects.filter(pandaid__in=wanted).select_related("computing_site"))
    files = {job.pandaid: [] for job in jobs}
    for item in JobFile.objects.filter(job_id__in=files).order_by("job_id", "id"):
        files[item.job_id].append(item)
    return {job.pandaid: panda_jobspec.job_description(job, files[job.pandaid]) for job in jobs}


class KillJobs(PandaEndpoint):
    """`job/kill`: {"job_ids": [...]} -> [true|false per id].

    PanDA answers per job, where our kill service refuses the whole call if one job is unknown or
    not the caller's: so only the jobs the caller may kill and that still run go to the service,
    and every other id answers false, as PanDA does for unknown, foreign or finished jobs.
    """

    def call(self, request, params):
        user = require_user(request)
        pandaids = int_list_param(params, "job_ids", limit=MAX_JOB_IDS)
        killable = _killable(user, pandaids)
        outcomes = kill.kill_jobs(user=user, pandaids=sorted(killable)) if killable else {}
        return envelope([_killed(outcomes.get(pandaid)) for pandaid in pandaids])


def _killable(user, pandaids):
    wanted = {pandaid for pandaid in pandaids if 0 < pandaid <= MAX_PANDAID}
    jobs = Job.objects.filter(pandaid__in=wanted).only("pandaid", "owner_id", "prod_source_label", "status")
    return {job.pandaid for job in jobs if job.status not in FINAL_STATES and kill.may_kill(user, job)}


def _killed(outcome):
    # kill_jobs answers "already <state>" for a job that ended after we looked: not killed by this call.
    return outcome is not None and not outcome.startswith("already")


class SetDebugMode(PandaEndpoint):
    """`job/set_debug_mode`: {"job_id": N, "mode": true|false} -> a message; the job's pilot heartbeats
    often and sends its stdout tail while it is on (the job's owner, a shifter or an admin)."""

    def call(self, request, params):
        user = require_user(request)
        pandaid = int_param(params, "job_id")
        mode = params.get("mode")
        if not isinstance(mode, bool):
            raise InvalidInput("mode must be true or false")
        peek.set_debug_mode(user=user, pandaid=pandaid, on=mode)
        return envelope(f"debug mode {'on' if mode else 'off'} for job {pandaid}")


class IsAlive(PandaEndpoint):
    """`system/is_alive`: what panda-client's hello() calls."""

    method = "get"

    def call(self, request, params):
        return envelope(None)

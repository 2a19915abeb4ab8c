"""The new PanDA pilot API, `/api/v1/pilot/*` (what pilot3 master and Harvester speak).

JSON bodies with snake_case names in the `{success, message, data}` envelope. Each function
renames its parameters to the legacy ones and calls the same code as `/server/panda/getJob`
and `updateJob` (jobs/pilot_views.py), so both APIs dispatch and record jobs identically.
Credentials are the same: a pilot credential as `Authorization: Bearer <token>`, or none at a
site that trusts unauthenticated pilots.
"""

import json

from django.urls import path

from pandamon.errors import InvalidInput, ServiceError
from pandamon.panda_api import PandaEndpoint, envelope, failure, int_list_param

from . import pilot_views, signing
from .pilot_views import SC_NO_JOBS, SC_SUCCESS
from .services import reports

# snake_case name -> legacy name (reference: panda-server pandaserver/api/v1/pilot_api.py).
ACQUIRE_NAMES = {
    "site_name": "siteName",
    "node": "node",
    "memory": "mem",
    "disk_space": "diskSpace",
    "prod_source_label": "prodSourceLabel",
    "n_jobs": "nJobs",
}
UPDATE_NAMES = {
    "job_id": "jobId",
    "job_status": "state",
    "site_name": "siteName",
    "node": "node",
    "attempt_nr": "attemptNr",
    "job_output_report": "xml",
    "pilot_log": "pilotLog",
    "trans_exit_code": "transExitCode",
    "pilot_error_code": "pilotErrorCode",
    "pilot_error_diag": "pilotErrorDiag",
    "exe_error_code": "exeErrorCode",
    "exe_error_diag": "exeErrorDiag",
    "cpu_consumption_time": "cpuConsumptionTime",
    "cpu_consumption_unit": "cpuConsumptionUnit",
    "max_rss": "maxRSS",
    "max_vmem": "maxVMEM",
    "n_events": "nEvents",
    "pilot_id": "pilotID",
    "batch_id": "batchID",
    # This project's job control (docs/job-control.md): debug-mode stdout and peek answers.
    "stdout": "stdout",
    "peek_answers": "peekAnswers",
}
MAX_BULK_UPDATES = 1000


def _legacy(params, names):
    """The parameters under their legacy names, as strings (what a form-encoded call carries)."""
    legacy = {}
    for name, legacy_name in names.items():
        value = params.get(name)
        if value is None:
            continue
        legacy[legacy_name] = json.dumps(value) if isinstance(value, dict | list) else str(value)
    return legacy


class PilotEndpoint(PandaEndpoint):
    # The bearer token is a pilot credential, checked against the site by sites.services.pilot_site;
    # DRF's user authentication must not try it as a user's API token.
    authentication_classes = []


class AcquireJobs(PilotEndpoint):
    """Jobs for a pilot: data `{"StatusCode": 0, "jobs": [...]}`, each job the getJob key set."""

    def call(self, request, params):
        descriptions, reason = pilot_views.acquire_jobs(
            _legacy(params, ACQUIRE_NAMES), token=pilot_views.bearer_token(request)
        )
        if not descriptions:
            return failure("No jobs in PanDA", status=200, data={"StatusCode": SC_NO_JOBS, "errorDialog": reason})
        return envelope({"StatusCode": SC_SUCCESS, "jobs": descriptions})


def _update(params, token):
    answer = pilot_views.report_job_answer(_legacy(params, UPDATE_NAMES), token=token)
    return {"StatusCode": SC_SUCCESS, "command": answer.command, **answer.extra}


class UpdateJob(PilotEndpoint):
    """A pilot's heartbeat or final report: data `{"StatusCode": 0, "command": "NULL" | "tobekilled" | "debug"
    | ..., "peek": [...], "peekInterval": s}` (the last two only while a peek is pending)."""

    def call(self, request, params):
        return envelope(_update(params, pilot_views.bearer_token(request)))


class UpdateJobsBulk(PilotEndpoint):
    """Several update_job calls in one: data is the list of their answers, in order. Each report
    is applied on its own, so one refused report does not undo the others (PanDA's behaviour)."""

    def call(self, request, params):
        job_list = params.get("job_list")
        if not isinstance(job_list, list) or not all(isinstance(item, dict) for item in job_list):
            raise InvalidInput("job_list must be a list of update_job objects")
        if len(job_list) > MAX_BULK_UPDATES:
            raise InvalidInput(f"at most {MAX_BULK_UPDATES} updates in one call")
        token = pilot_views.bearer_token(request)
        return envelope([self._one(item, token) for item in job_list])

    @staticmethod
    def _one(item, token):
        try:
            data = _update(item, token)
        except ServiceError as error:
            return {"success": False, "message": error.message, "data": None}
        return {"success": True, "message": "", "data": data}


class GetJobStatus(PilotEndpoint):
    """GET ?job_ids=1&job_ids=2 → `[{"job_id", "status", "attempt_number"}, ...]`, 'not found' for unknown ids."""

    method = "get"

    def call(self, request, params):
        ids = int_list_param(params, "job_ids")
        statuses = reports.job_statuses(ids)
        return envelope(
            [
                {
                    "job_id": pandaid,
                    "status": "not found" if status == "notfound" else status,
                    "attempt_number": attempt,
                }
                for pandaid, (status, attempt) in zip(ids, statuses, strict=True)
            ]
        )


class PublicKeys(PilotEndpoint):
    """GET: the public keys pilots verify job signatures with (docs/job-signing.md): data
    `{"algorithm", "keys": [{"key_id", "algorithm", "active", "pem"}, ...]}`, the active key
    first; no keys when this server signs nothing. Open to anyone: the keys are public. A pilot
    that fetches them trusts this channel as much as the one its jobs come on; a key file
    installed by the site is the stronger choice."""

    method = "get"

    def call(self, request, params):
        return envelope({"algorithm": signing.ALGORITHM, "keys": signing.published_keys()})


urlpatterns = [
    path("public_keys", PublicKeys.as_view(), name="pilot-api-public-keys"),
    path("acquire_jobs", AcquireJobs.as_view(), name="pilot-api-acquire-jobs"),
    path("update_job", UpdateJob.as_view(), name="pilot-api-update-job"),
    path("update_jobs_bulk", UpdateJobsBulk.as_view(), name="pilot-api-update-jobs-bulk"),
    path("get_job_status", GetJobStatus.as_view(), name="pilot-api-get-job-status"),
]

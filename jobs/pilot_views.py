"""The PanDA pilot protocol: POST /server/panda/{getJob,updateJob,getStatus}.

Form-encoded requests; answers are JSON when the pilot sends `Accept: application/json`
(as pilot3 does), otherwise URL-encoded `StatusCode=0&PandaID=...` like the original
dispatcher. These are plain Django views rather than DRF ones: getJob is the hottest
path of the system and needs nothing DRF adds.
"""

import json
from urllib.parse import urlencode

from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from pandamon.errors import InvalidInput, NotFound, PermissionDenied, ServiceError
from sites.factory.services import report_worker_status
from sites.services import pilot_site, record_pilot_contact

from .models import Job
from .protocol import job_description
from .services import dispatcher, reports

# Protocol status codes (jobdispatcher/Protocol.py).
SC_SUCCESS, SC_NO_JOBS, SC_INVALID, SC_PERMS = 0, 20, 50, 70
MAX_JOBS_PER_CALL = 100
MAX_PEEK_ANSWERS = 10  # a pilot has at most one pending request per kind (3) to answer
REPORT_FIELDS = {
    # pilot parameter: (Job field, type)
    "transExitCode": ("trans_exit_code", int),
    "pilotErrorCode": ("pilot_error_code", int),
    "pilotErrorDiag": ("pilot_error_diag", str),
    "exeErrorCode": ("exe_error_code", int),
    "exeErrorDiag": ("exe_error_diag", str),
    "cpuConsumptionTime": ("cpu_consumption_time", int),
    "cpuConsumptionUnit": ("cpu_consumption_unit", str),
    "maxRSS": ("max_rss", int),
    "maxVMEM": ("max_vmem", int),
    "nEvents": ("n_events", int),
    "pilotID": ("pilot_id", str),
    "batchID": ("batch_id", str),
}
TEXT_LIMITS = {
    "pilot_error_diag": 500,
    "exe_error_diag": 500,
    "cpu_consumption_unit": 32,
    "pilot_id": 200,
    "batch_id": 80,
}


def _answer(request, payload, status=200):
    if "application/json" in request.headers.get("Accept", ""):
        return HttpResponse(json.dumps(payload), status=status, content_type="application/json")
    encoded = {key: json.dumps(value) if isinstance(value, list | dict) else value for key, value in payload.items()}
    return HttpResponse(urlencode(encoded), status=status, content_type="text/plain")


def _refusal(request, error):
    code = SC_PERMS if isinstance(error, PermissionDenied) else SC_INVALID
    status = 400 if isinstance(error, NotFound) else error.status_code
    return _answer(request, {"StatusCode": code, "errorDialog": error.message}, status=status)


def bearer_token(request):
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _number(params, name, cast=int, default=None):
    raw = params.get(name, "")
    if raw in ("", "NULL", "None"):
        return default
    try:
        return cast(float(raw)) if cast is int else cast(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a number, got {raw[:40]!r}") from None


@csrf_exempt
@require_POST
def get_job(request):
    params = request.POST
    try:
        descriptions, reason = acquire_jobs(params, token=bearer_token(request))
    except ServiceError as error:
        return _refusal(request, error)
    if not descriptions:
        return _answer(request, {"StatusCode": SC_NO_JOBS, "errorDialog": reason})
    if "nJobs" in params:
        return _answer(request, {"StatusCode": SC_SUCCESS, "jobs": descriptions})
    return _answer(request, descriptions[0])


def acquire_jobs(params, *, token):
    """getJob for both pilot APIs: (job descriptions, '') or ([], why there is none).

    `params` use the legacy names (siteName, node, mem, diskSpace, prodSourceLabel, nJobs)."""
    site_name = params.get("siteName", "").strip()
    if not site_name:
        raise InvalidInput("siteName is required")
    pilot_request = _pilot_request(params)
    site = pilot_site(site_name=site_name, token=token)
    sent, reason = dispatcher.dispatch_jobs(site=site, request=pilot_request)
    return [job_description(job, files, site) for job, files in sent], reason


def _pilot_request(params):
    n_jobs = _number(params, "nJobs", default=1)
    if not 1 <= n_jobs <= MAX_JOBS_PER_CALL:
        raise InvalidInput(f"nJobs must be between 1 and {MAX_JOBS_PER_CALL}")
    return dispatcher.PilotRequest(
        node=params.get("node", "")[:128],
        n_jobs=n_jobs,
        memory_mb=_number(params, "mem"),
        disk_mb=_number(params, "diskSpace"),
        prod_source_label=params.get("prodSourceLabel") or None,
    )


@csrf_exempt
@require_POST
def update_job(request):
    try:
        answer = report_job_answer(request.POST, token=bearer_token(request))
    except ServiceError as error:
        return _refusal(request, error)
    return _answer(request, {"StatusCode": SC_SUCCESS, "command": answer.command, **answer.extra})


def report_job_answer(params, *, token):
    """updateJob for both pilot APIs: apply the report; the answer holds the command for the pilot
    and the job-control keys (peek, peekInterval).

    `params` use the legacy names (jobId, state, siteName, node, attemptNr, xml, stdout, peekAnswers, ...)."""
    report = _pilot_report(params)
    site = _site_of_report(token, params, report.pandaid)
    answer = reports.update_job(site_ids={site.pk} if site else set(), report=report)
    if site is not None:
        record_pilot_contact(site=site, node=report.node, update=True)
    return answer


def _site_of_report(token, params, pandaid):
    """The pilot's site (checked against its credential); None when the job is unknown."""
    site_name = params.get("siteName", "").strip()
    if not site_name:
        site_name = Job.objects.filter(pandaid=pandaid).values_list("computing_site__name", flat=True).first()
        if site_name is None:
            return None
    return pilot_site(site_name=site_name, token=token)


def _pilot_report(params):
    pandaid = _number(params, "jobId")
    state = params.get("state", "").strip()
    if pandaid is None or not state:
        raise InvalidInput("jobId and state are required")
    fields = {}
    for name, (field, cast) in REPORT_FIELDS.items():
        if params.get(name, "") in ("", "NULL", "None"):
            continue
        fields[field] = _number(params, name) if cast is int else params[name][: TEXT_LIMITS[field]]
    return reports.PilotReport(
        pandaid=pandaid,
        state=state,
        node=params.get("node", ""),
        attempt_nr=_number(params, "attemptNr"),
        output_files=reports.parse_output_report(params.get("xml", "")) if state in reports.FINAL_REPORTS else None,
        pilot_log=params.get("pilotLog", ""),
        fields=fields,
        peek_answers=_peek_answers(params.get("peekAnswers", "")),
        debug_stdout=params.get("stdout", ""),
    )


def _peek_answers(raw):
    """`peekAnswers`: a JSON object {"<peek request id>": "<text>"} (docs/pilot-protocol.md)."""
    if raw in ("", "NULL", "None"):
        return {}
    try:
        answers = json.loads(raw)
    except ValueError:
        raise InvalidInput("peekAnswers must be a JSON object {request id: text}") from None
    if not isinstance(answers, dict) or not all(isinstance(text, str) for text in answers.values()):
        raise InvalidInput("peekAnswers must be a JSON object {request id: text}")
    if len(answers) > MAX_PEEK_ANSWERS:
        raise InvalidInput(f"peekAnswers holds at most {MAX_PEEK_ANSWERS} answers")
    try:
        return {int(key): text for key, text in answers.items()}
    except ValueError:
        raise InvalidInput("peekAnswers keys must be peek request ids (integers)") from None


@csrf_exempt
@require_POST
def get_status(request):
    raw_ids = request.POST.get("ids", "")
    try:
        ids = [int(part) for part in raw_ids.replace("+", ",").split(",") if part.strip()]
    except ValueError:
        return _refusal(request, InvalidInput("ids must be a comma-separated list of PandaIDs"))
    if not ids or len(ids) > 10000:
        return _refusal(request, InvalidInput("give between 1 and 10000 ids"))
    statuses = reports.job_statuses(ids)
    return _answer(
        request,
        {
            "StatusCode": SC_SUCCESS,
            "status": "+".join(status for status, _ in statuses),
            "attemptNr": "+".join(str(attempt) for _, attempt in statuses),
        },
    )


@csrf_exempt
@require_POST
def update_worker_pilot_status(request):
    """updateWorkerPilotStatus: a factory's pilot says it started or finished (sites/factory, docs/pilot-factory.md).

    Fields as pilot3 sends them under Harvester: workerID (the pilot id the factory gave it),
    harvesterID (the factory), status (started | finished; running = started), site, node_id;
    our pilot adds exitCode, jobsRun and exitReason when it finishes."""
    params = request.POST
    try:
        message = report_worker_status(
            token=bearer_token(request), worker_id=params.get("workerID", "").strip(),
            status=params.get("status", "").strip(), site_name=params.get("site", params.get("siteName", "")).strip(),
            factory_name=params.get("harvesterID", "").strip(), node=params.get("node_id", params.get("node", "")),
            exit_code=_number(params, "exitCode"), jobs_run=_number(params, "jobsRun"),
            reason=params.get("exitReason", "")[:500],
        )  # fmt: skip
    except ServiceError as error:
        return _refusal(request, error)
    return _answer(request, {"StatusCode": SC_SUCCESS, "message": message})

"""PanDA's JobSpec and FileSpec as panda-client 2.2 sends and reads them (docs/panda-compat.md).

`job/submit` carries jobs as a JSON *string* of positional lists (reference/panda-wire.md §1):
the 126 JobSpec attribute values in class order, "NULL" for unset, datetimes as
{"_datetime_object": ...}, and last the list of files, each the FileSpec values and a trailing
null. parse_jobs() turns that into the dicts our JobSpecSerializer validates, so a job from
panda-client is checked and stored exactly like one from our own REST API.

`job/get_description` answers one dict per job with every JobSpec key plus "Files", which the
client feeds to JobSpec.load_from_dict(); job_description() builds it from a Job and its files.
"""

import datetime
import json

from django.conf import settings

from pandamon.errors import InvalidInput

from .api import JobSpecSerializer

NULL = "NULL"

# JobSpec._attributes of panda-client 2.2.0 (pandaclient/JobSpec.py), in class order; panda-server
# 1.0.4 (pandaserver/taskbuffer/JobSpec.py) has the same 126 names. The wire format is positional.
JOB_ATTRIBUTES = (
    "PandaID", "jobDefinitionID", "schedulerID", "pilotID", "creationTime", "creationHost",
    "modificationTime", "modificationHost", "AtlasRelease", "transformation", "homepackage",
    "prodSeriesLabel", "prodSourceLabel", "prodUserID", "assignedPriority", "currentPriority",
    "attemptNr", "maxAttempt", "jobStatus", "jobName", "maxCpuCount", "maxCpuUnit", "maxDiskCount",
    "maxDiskUnit", "ipConnectivity", "minRamCount", "minRamUnit", "startTime", "endTime",
    "cpuConsumptionTime", "cpuConsumptionUnit", "commandToPilot", "transExitCode", "pilotErrorCode",
    "pilotErrorDiag", "exeErrorCode", "exeErrorDiag", "supErrorCode", "supErrorDiag", "ddmErrorCode",
    "ddmErrorDiag", "brokerageErrorCode", "brokerageErrorDiag", "jobDispatcherErrorCode",
    "jobDispatcherErrorDiag", "taskBufferErrorCode", "taskBufferErrorDiag", "computingSite",
    "computingElement", "jobParameters", "metadata", "prodDBlock", "dispatchDBlock", "destinationDBlock",
    "destinationSE", "nEvents", "grid", "cloud", "cpuConversion", "sourceSite", "destinationSite",
    "transferType", "taskID", "cmtConfig", "stateChangeTime", "prodDBUpdateTime", "lockedby",
    "relocationFlag", "jobExecutionID", "VO", "pilotTiming", "workingGroup", "processingType",
    "prodUserName", "nInputFiles", "countryGroup", "batchID", "parentID", "specialHandling", "jobsetID",
    "coreCount", "nInputDataFiles", "inputFileType", "inputFileProject", "inputFileBytes",
    "nOutputDataFiles", "outputFileBytes", "jobMetrics", "workQueue_ID", "jediTaskID", "jobSubStatus",
    "actualCoreCount", "reqID", "maxRSS", "maxVMEM", "maxSWAP", "maxPSS", "avgRSS", "avgVMEM", "avgSWAP",
    "avgPSS", "maxWalltime", "nucleus", "eventService", "failedAttempt", "hs06sec", "gshare", "hs06",
    "totRCHAR", "totWCHAR", "totRBYTES", "totWBYTES", "rateRCHAR", "rateWCHAR", "rateRBYTES",
    "rateWBYTES", "resource_type", "diskIO", "memory_leak", "memory_leak_x2", "container_name",
    "job_label", "gco2_regional", "gco2_global", "cpu_architecture_level", "outputFileType",
)  # fmt: skip
# JobSpec._zeroAttrs: PanDA stores 0 rather than NULL for these, so it answers 0 when unset.
ZERO_ATTRIBUTES = frozenset((
    "assignedPriority", "currentPriority", "attemptNr", "maxAttempt", "maxCpuCount", "maxDiskCount",
    "minRamCount", "cpuConsumptionTime", "pilotErrorCode", "exeErrorCode", "supErrorCode", "ddmErrorCode",
    "brokerageErrorCode", "jobDispatcherErrorCode", "taskBufferErrorCode", "nEvents", "relocationFlag",
    "jobExecutionID", "nOutputDataFiles", "outputFileBytes",
))  # fmt: skip
# FileSpec._attributes of panda-client 2.2.0 (pandaclient/FileSpec.py): what the client sends per file.
CLIENT_FILE_ATTRIBUTES = (
    "rowID", "PandaID", "GUID", "lfn", "type", "dataset", "status", "prodDBlock", "prodDBlockToken",
    "dispatchDBlock", "dispatchDBlockToken", "destinationDBlock", "destinationDBlockToken", "destinationSE",
    "fsize", "md5sum", "checksum", "scope",
)  # fmt: skip
# FileSpec._attributes of panda-server 1.0.4 (pandaserver/taskbuffer/FileSpec.py): what the server
# answers per file. The same order with `row_ID` spelt differently and four JEDI columns added.
SERVER_FILE_ATTRIBUTES = ("row_ID", *CLIENT_FILE_ATTRIBUTES[1:], "jediTaskID", "datasetID", "fileID", "attemptNr")

# JobSpec attribute -> JobSpecSerializer field, for the attributes a submission honours.
SUBMIT_FIELDS = {
    "jobName": "job_name", "transformation": "transformation", "jobParameters": "job_parameters",
    "prodSourceLabel": "prod_source_label", "processingType": "processing_type",
    "computingSite": "computing_site", "cloud": "cloud", "coreCount": "core_count",
    "minRamCount": "min_ram_count", "maxDiskCount": "max_disk_count", "maxWalltime": "max_walltime",
    "maxCpuCount": "max_cpu_count", "maxAttempt": "max_attempt", "jobsetID": "jobset_id",
    "jobDefinitionID": "job_definition_id", "workingGroup": "working_group", "VO": "vo",
    "AtlasRelease": "sw_release", "homepackage": "homepackage", "cmtConfig": "cmt_config",
    "container_name": "container_name", "specialHandling": "special_handling",
}  # fmt: skip
# Fields fed by the first set one of several attributes (PanDA keeps both, we keep one).
SUBMIT_FIRST_OF = {"priority": ("assignedPriority", "currentPriority"), "task_id": ("jediTaskID", "taskID")}
# PanDA uses 0 and NULL alike for "no such id"; our serializer wants ids of at least 1.
ZERO_MEANS_UNSET = frozenset(("jobDefinitionID", "jobsetID", "jediTaskID", "taskID"))
# Our field names back to PanDA's, so an error names what the client set.
PANDA_NAMES = {ours: theirs for theirs, ours in SUBMIT_FIELDS.items()} | {
    ours: "/".join(theirs) for ours, theirs in SUBMIT_FIRST_OF.items()
} | {"input_files": "Files (input)", "output_files": "Files (output)", "log_file": "Files (log)"}  # fmt: skip
FILE_PANDA_NAMES = {"guid": "GUID", "lfn": "lfn", "dataset": "dataset", "scope": "scope", "fsize": "fsize",
                    "checksum": "checksum"}  # fmt: skip
LOG_DATASET_MAX = 255  # JobFile.dataset


# -- job/submit: the client's payload -> validated specs for jobs.services.submission --------------------


def parse_jobs(payload):
    """The `jobs` value of job/submit -> one JobSpecSerializer input dict per job (InvalidInput if malformed)."""
    states = _decode(payload)
    limit = settings.PANDA["MAX_JOBS_PER_SUBMISSION"]
    if len(states) > limit:
        raise InvalidInput(f"jobs: {len(states)} jobs in one call; at most {limit} are accepted")
    return [_job_spec(f"jobs[{index}]", state) for index, state in enumerate(states)]


def _decode(payload):
    if isinstance(payload, str):
        try:
            payload = json.loads(payload, object_hook=_datetime_hook)
        except (ValueError, RecursionError) as exc:
            raise InvalidInput(f"jobs: not valid JSON ({exc})") from None
    if not isinstance(payload, list):
        raise InvalidInput(f"jobs: expected a JSON list of jobs, got {type(payload).__name__}")
    return payload


def _datetime_hook(obj):
    """The client's MiscUtils.as_python_object; a malformed date is a malformed payload, as for PanDA."""
    if "_datetime_object" not in obj:
        return obj
    try:
        return datetime.datetime.strptime(str(obj["_datetime_object"]), "%Y-%m-%d %H:%M:%S.%f")  # noqa: DTZ007
    except ValueError:
        raise InvalidInput(f"jobs: bad datetime {str(obj['_datetime_object'])[:40]!r}") from None


def _job_spec(where, state):
    expected = len(JOB_ATTRIBUTES) + 1
    if not isinstance(state, list) or len(state) != expected:
        got = len(state) if isinstance(state, list) else f"a {type(state).__name__}"
        raise InvalidInput(f"{where}: expected a list of {expected} values (the JobSpec attributes, then the files), got {got}")  # fmt: skip
    values = dict(zip(JOB_ATTRIBUTES, state[:-1], strict=True))
    spec = {ours: values[theirs] for theirs, ours in SUBMIT_FIELDS.items() if _is_set(theirs, values[theirs])}
    for ours, candidates in SUBMIT_FIRST_OF.items():
        chosen = [values[name] for name in candidates if _is_set(name, values[name])]
        if chosen:
            spec[ours] = chosen[0]
    spec.update(_files(where, state[-1]))
    return spec


def _is_set(name, value):
    if value is None or value == NULL:
        return False
    return not (name in ZERO_MEANS_UNSET and value in (0, "0"))


def _files(where, states):
    """The job's file list -> input_files, output_files, log_file (+ log_dataset)."""
    if not isinstance(states, list):
        raise InvalidInput(f"{where}: the last value must be the list of files, got a {type(states).__name__}")
    found = {"input": [], "output": [], "log": []}
    for number, state in enumerate(states):
        kind, item = _file(f"{where}.Files[{number}]", state)
        found[kind].append(item)
    spec = {}
    if found["input"]:
        spec["input_files"] = found["input"]
    if found["output"]:
        spec["output_files"] = found["output"]
    if len(found["log"]) > 1:
        raise InvalidInput(f"{where}.Files: {len(found['log'])} files of type 'log'; a job has at most one")
    if found["log"]:
        spec.update(_log(where, found["log"][0]))
    return spec


def _file(where, state):
    shortest, longest = len(CLIENT_FILE_ATTRIBUTES) + 1, len(SERVER_FILE_ATTRIBUTES) + 1
    if not isinstance(state, list) or not shortest <= len(state) <= longest:
        got = len(state) if isinstance(state, list) else f"a {type(state).__name__}"
        raise InvalidInput(f"{where}: expected a list of {shortest} values (the FileSpec attributes, then null), got {got}")  # fmt: skip
    values = {
        name: value
        for name, value in zip(CLIENT_FILE_ATTRIBUTES, state[: len(CLIENT_FILE_ATTRIBUTES)], strict=True)
        if _is_set(name, value)
    }
    kind = values.get("type")
    if kind not in ("input", "output", "log"):
        raise InvalidInput(f"{where}.type: expected 'input', 'output' or 'log', got {str(kind)[:40]!r}")
    if "lfn" not in values:
        raise InvalidInput(f"{where}.lfn: every file needs a name")
    # PanDA names a file's dataset in `dataset`, or only in prodDBlock (input) / destinationDBlock (output).
    block = values.get("prodDBlock" if kind == "input" else "destinationDBlock")
    item = {"lfn": values.get("lfn"), "guid": values.get("GUID"), "dataset": values.get("dataset") or block,
            "scope": values.get("scope"), "fsize": values.get("fsize"), "checksum": values.get("checksum")}  # fmt: skip
    if isinstance(item["checksum"], str):
        item["checksum"] = item["checksum"].lower()  # adler32 hex in either case means the same
    return kind, {key: value for key, value in item.items() if value is not None}


def _log(where, item):
    """JobSpecSerializer takes only the log's name; submission reads its dataset from `log_dataset`."""
    spec = {"log_file": item.get("lfn")}
    dataset = item.get("dataset")
    if dataset is not None:
        if not isinstance(dataset, str) or len(dataset) > LOG_DATASET_MAX:
            raise InvalidInput(
                f"{where}: the log file's dataset must be a name of at most {LOG_DATASET_MAX} characters"
            )
        spec["log_dataset"] = dataset
    return spec


def validate_specs(specs):
    """Every parsed spec through JobSpecSerializer before anything is written; the first error is raised."""
    validated = []
    for index, spec in enumerate(specs):
        serializer = JobSpecSerializer(data=spec)
        if not serializer.is_valid():
            raise InvalidInput(f"jobs[{index}]: {_first_error(spec, serializer.errors)}")
        data = dict(serializer.validated_data)
        if "log_dataset" in spec:
            data["log_dataset"] = spec["log_dataset"]
        validated.append(data)
    return validated


def _first_error(spec, errors):
    field, problem = next(iter(errors.items()))
    name = PANDA_NAMES.get(field, field)
    if field in ("input_files", "output_files") and isinstance(problem, list):
        for number, item_errors in enumerate(problem):
            if isinstance(item_errors, dict) and item_errors:
                items = spec.get(field) or []
                lfn = items[number].get("lfn") if number < len(items) else None
                key, messages = next(iter(item_errors.items()))
                return f"{name} file {lfn!r}: {FILE_PANDA_NAMES.get(key, key)}: {_text(messages)}"
    return f"{name}: {_text(problem)}"


def _text(messages):
    if isinstance(messages, list | tuple):
        return " ".join(_text(message) for message in messages)
    return str(messages)


# -- job/get_description: a Job and its files -> JobSpec.load_from_dict() input ---------------------------

# JobSpec attribute -> Job model field, for the attributes we keep.
JOB_COLUMNS = {
    "PandaID": "pandaid", "jobDefinitionID": "job_definition_id", "pilotID": "pilot_id",
    "creationTime": "creation_time", "modificationTime": "modification_time",
    "modificationHost": "modification_host", "AtlasRelease": "sw_release", "transformation": "transformation",
    "homepackage": "homepackage", "prodSourceLabel": "prod_source_label", "prodUserID": "prod_user_id",
    "assignedPriority": "assigned_priority", "currentPriority": "current_priority", "attemptNr": "attempt_nr",
    "maxAttempt": "max_attempt", "jobStatus": "status", "jobName": "job_name", "maxCpuCount": "max_cpu_count",
    "maxDiskCount": "max_disk_count", "minRamCount": "min_ram_count", "startTime": "start_time",
    "endTime": "end_time", "cpuConsumptionTime": "cpu_consumption_time",
    "cpuConsumptionUnit": "cpu_consumption_unit", "commandToPilot": "command_to_pilot",
    "transExitCode": "trans_exit_code", "pilotErrorCode": "pilot_error_code", "pilotErrorDiag": "pilot_error_diag",
    "exeErrorCode": "exe_error_code", "exeErrorDiag": "exe_error_diag", "supErrorCode": "sup_error_code",
    "supErrorDiag": "sup_error_diag", "ddmErrorCode": "ddm_error_code", "ddmErrorDiag": "ddm_error_diag",
    "brokerageErrorCode": "brokerage_error_code", "brokerageErrorDiag": "brokerage_error_diag",
    "jobDispatcherErrorCode": "job_dispatcher_error_code", "jobDispatcherErrorDiag": "job_dispatcher_error_diag",
    "taskBufferErrorCode": "task_buffer_error_code", "taskBufferErrorDiag": "task_buffer_error_diag",
    "jobParameters": "job_parameters", "destinationSE": "destination_se", "nEvents": "n_events",
    "cloud": "cloud", "taskID": "task_id", "cmtConfig": "cmt_config", "stateChangeTime": "state_change_time",
    "VO": "vo", "workingGroup": "working_group", "processingType": "processing_type",
    "prodUserName": "prod_user_name", "nInputFiles": "n_input_files", "countryGroup": "country_group",
    "batchID": "batch_id", "parentID": "parent_id", "specialHandling": "special_handling",
    "jobsetID": "jobset_id", "coreCount": "core_count", "jediTaskID": "task_id", "jobSubStatus": "job_sub_status",
    "reqID": "req_id", "maxRSS": "max_rss", "maxVMEM": "max_vmem", "maxWalltime": "max_walltime",
    "container_name": "container_name",
}  # fmt: skip
# Our requirements are in MB (jobs/models.py); PanDA states the unit next to the count.
JOB_CONSTANTS = {"minRamUnit": "MB", "maxDiskUnit": "MB"}
# FileSpec attribute -> JobFile model field.
FILE_COLUMNS = {
    "row_ID": "id", "PandaID": "job_id", "GUID": "guid", "lfn": "lfn", "type": "type", "dataset": "dataset",
    "status": "status", "prodDBlock": "prod_dblock", "dispatchDBlock": "dispatch_dblock",
    "destinationDBlock": "destination_dblock", "destinationSE": "destination_se", "fsize": "fsize",
    "md5sum": "md5sum", "checksum": "checksum", "scope": "scope", "attemptNr": "attempt_nr",
}  # fmt: skip


def job_description(job, files):
    """All 126 JobSpec keys (None, or 0 for PanDA's zero columns, where we keep nothing) and "Files".

    Datetimes stay datetime objects: the envelope sends them as {"__datetime__": ...}. Our empty
    strings become None, which is how PanDA answers a column that was never set.
    """
    described = {name: 0 if name in ZERO_ATTRIBUTES else None for name in JOB_ATTRIBUTES}
    described.update({name: _value(getattr(job, column)) for name, column in JOB_COLUMNS.items()})
    described.update(JOB_CONSTANTS)
    described["computingSite"] = job.computing_site.name if job.computing_site_id else None
    described.update(_job_blocks(files))
    described["Files"] = [_file_description(job, item) for item in files]
    return described


def _job_blocks(files):
    """PanDA's job-level dataset columns: those of the first input and the first output or log file."""
    inputs = [item for item in files if item.type == "input"]
    outputs = [item for item in files if item.type != "input"]
    return {
        "prodDBlock": _value(inputs[0].prod_dblock or inputs[0].dataset) if inputs else None,
        "dispatchDBlock": _value(inputs[0].dispatch_dblock) if inputs else None,
        "destinationDBlock": _value(outputs[0].destination_dblock or outputs[0].dataset) if outputs else None,
    }


def _file_description(job, item):
    described = {name: None for name in SERVER_FILE_ATTRIBUTES}
    described.update({name: _value(getattr(item, column)) for name, column in FILE_COLUMNS.items()})
    described["fsize"] = item.fsize or 0  # FileSpec._zeroAttrs
    described["jediTaskID"] = job.task_id
    return described


def _value(value):
    return None if value == "" else value

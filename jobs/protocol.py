"""The PanDA job description a pilot receives from getJob (reference/panda-server.md §3.2).

Pure functions: a Job and its files in, the flat dict of PanDA keys out, with the
"NULL" convention for unset values that real pilots expect. The answer carries the job's
signature (jobSignature, jobSignatureKeyId; docs/job-signing.md), over the strings of the
answer itself.
"""

from pilot.signature import SIGNED_KEYS

from . import signing
from .choices import FileType

NULL = "NULL"


def _or_null(value):
    return NULL if value in (None, "") else value


def _joined(files, attribute, default=""):
    return ",".join(str(getattr(f, attribute) if getattr(f, attribute) not in (None, "") else default) for f in files)


def job_description(job, files, site):
    description = {"StatusCode": 0, **_description_keys(job, files, site.name)}
    if "lc" in job.special_handling.split(","):
        description["loopingCheck"] = False
    # A row of the single-statement dispatch brings the signature stored at submission; a Job
    # instance (the ORM path) does not, and gets one made now.
    stored = getattr(job, "signature_key_id", None), getattr(job, "signature_b64", None)
    description.update(signing.signature_keys(description, *stored))
    return description


def signed_fields(job, files):
    """The keys of a job's description that its signature covers, as getJob will send them."""
    description = _description_keys(job, files, endpoint="")
    return {key: description[key] for key in SIGNED_KEYS}


def _description_keys(job, files, endpoint):
    inputs = [f for f in files if f.type in (FileType.INPUT, FileType.PSEUDO_INPUT)]
    outputs = [f for f in files if f.type == FileType.OUTPUT]
    logs = [f for f in files if f.type == FileType.LOG]
    return {**_job_keys(job, endpoint), **_input_keys(inputs, endpoint), **_output_keys(outputs, logs, endpoint)}


def _job_keys(job, endpoint):
    return {
        "PandaID": job.pandaid,
        "jobName": job.job_name,
        "jobDefinitionID": _or_null(job.job_definition_id),
        "jobsetID": _or_null(job.jobset_id),
        "taskID": _or_null(job.task_id),
        "reqID": _or_null(job.req_id),
        "prodSourceLabel": job.prod_source_label,
        "processingType": _or_null(job.processing_type),
        "transformation": job.transformation,
        "jobPars": job.job_parameters,
        "swRelease": _or_null(job.sw_release),
        "homepackage": _or_null(job.homepackage),
        "cmtConfig": _or_null(job.cmt_config),
        "container_name": _or_null(job.container_name),
        "attemptNr": job.attempt_nr,
        "currentPriority": job.current_priority,
        "coreCount": job.core_count,
        "minRamCount": job.min_ram_count,
        "maxDiskCount": job.max_disk_count,
        "maxCpuCount": job.max_cpu_count,
        "maxWalltime": job.max_walltime or NULL,
        "cloud": _or_null(job.cloud),
        "destinationSE": _or_null(job.destination_se or endpoint),
        "prodUserID": _or_null(job.prod_user_id or job.prod_user_name),
        "nSent": job.n_sent,
        "transferType": NULL,
        "sourceSite": NULL,
        "nucleus": NULL,
        "resource_type": "MCORE" if job.core_count > 1 else "SCORE",
        "ioIntensity": NULL,
        "ioIntensityUnit": NULL,
    }


def _input_keys(inputs, endpoint):
    """Comma-joined, one entry per input file, in the same order in every key."""
    return {
        "inFiles": _joined(inputs, "lfn"),
        "GUID": _joined(inputs, "guid", NULL),
        "fsize": _joined(inputs, "fsize", "0"),
        "checksum": _joined(inputs, "checksum", NULL),
        "scopeIn": _joined(inputs, "scope", NULL),
        "realDatasetsIn": _joined(inputs, "dataset", NULL),
        "prodDBlocks": _joined(inputs, "prod_dblock", NULL),
        "prodDBlockToken": ",".join(NULL for _ in inputs),
        "dispatchDblock": _joined(inputs, "dispatch_dblock", NULL),
        "dispatchDBlockToken": ",".join(NULL for _ in inputs),
        "ddmEndPointIn": ",".join(endpoint for _ in inputs),
    }


def _output_keys(outputs, logs, endpoint):
    """Outputs, then the log file, as PanDA lists them."""
    out_and_log = outputs + logs
    log = logs[0] if logs else None
    return {
        "outFiles": _joined(out_and_log, "lfn"),
        "realDatasets": _joined(out_and_log, "dataset", NULL),
        "destinationDblock": _joined(out_and_log, "destination_dblock", NULL),
        "destinationDBlockToken": ",".join(NULL for _ in out_and_log),
        "scopeOut": _joined(outputs, "scope", ""),
        "fileDestinationSE": ",".join(endpoint for _ in out_and_log),
        "ddmEndPointOut": ",".join(endpoint for _ in out_and_log),
        "logFile": log.lfn if log else NULL,
        "logGUID": log.guid if log else NULL,
        "scopeLog": _or_null(log.scope) if log else NULL,
    }

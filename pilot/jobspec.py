"""The job description the dispatcher hands out in a getJob answer.

The dispatcher flattens everything into strings: file lists are
comma-joined and unset values are the string "NULL". This module turns that
into typed values once, so the rest of the pilot never sees "NULL".
"""

from dataclasses import dataclass, field

from pilot.client import ProtocolError


@dataclass(frozen=True)
class InputFile:
    lfn: str
    guid: str | None = None
    fsize: int | None = None
    checksum: str | None = None


@dataclass(frozen=True)
class JobSpec:
    panda_id: int
    attempt_nr: int
    job_name: str
    transformation: str
    job_pars: str
    input_files: list[InputFile] = field(default_factory=list)
    output_files: list[str] = field(default_factory=list)
    log_file: str | None = None
    log_guid: str | None = None
    core_count: int | None = None
    max_walltime: int | None = None
    prod_source_label: str | None = None
    # False when the job's task disabled the looping-job check (getJob's `loopingCheck`).
    looping_check: bool = True
    # Why the pilot refuses to run the job (its signature did not verify), None when it may run.
    refusal: str | None = None


def unset(value) -> bool:
    return value is None or (isinstance(value, str) and value.strip() in ("", "NULL", "None"))


def text_field(answer: dict, key: str) -> str | None:
    value = answer.get(key)
    return None if unset(value) else str(value)


def bool_field(answer: dict, key: str, default: bool) -> bool:
    """A PanDA flag: False, "False", "false", 0 or "0" is off; unset is `default`."""
    value = answer.get(key)
    if unset(value):
        return default
    return str(value).strip().lower() not in ("false", "0")


def int_field(answer: dict, key: str) -> int | None:
    value = answer.get(key)
    if unset(value):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def split_list(value) -> list[str]:
    """'a,b,,c' -> ['a', 'b', '', 'c']; unset -> []. Keeps positions aligned."""
    if unset(value):
        return []
    return [item.strip() for item in str(value).split(",")]


def _nth(items: list[str], index: int) -> str | None:
    if index < len(items) and not unset(items[index]):
        return items[index]
    return None


def _parse_inputs(answer: dict) -> list[InputFile]:
    lfns = split_list(answer.get("inFiles"))
    guids = split_list(answer.get("GUID"))
    sizes = split_list(answer.get("fsize"))
    checksums = split_list(answer.get("checksum"))
    inputs = []
    for index, lfn in enumerate(lfns):
        if not lfn:
            continue
        size = _nth(sizes, index)
        inputs.append(
            InputFile(
                lfn=lfn,
                guid=_nth(guids, index),
                # Dispatchers fill unknown sizes with "0"; treat that as unknown.
                fsize=int(size) if size and size.isdigit() and int(size) > 0 else None,
                checksum=_nth(checksums, index),
            )
        )
    return inputs


def parse_job(answer: dict) -> JobSpec:
    """Build a JobSpec from a getJob answer with StatusCode 0."""
    panda_id = int_field(answer, "PandaID")
    if panda_id is None:
        raise ProtocolError(f"getJob answer without a usable PandaID: {answer}")
    log_file = text_field(answer, "logFile")
    # outFiles lists the log file too; it is handled separately.
    outputs = [lfn for lfn in split_list(answer.get("outFiles")) if lfn and lfn != log_file]
    return JobSpec(
        panda_id=panda_id,
        attempt_nr=int_field(answer, "attemptNr") or 0,
        job_name=text_field(answer, "jobName") or "",
        transformation=text_field(answer, "transformation") or "",
        job_pars=text_field(answer, "jobPars") or "",
        input_files=_parse_inputs(answer),
        output_files=outputs,
        log_file=log_file,
        log_guid=text_field(answer, "logGUID"),
        core_count=int_field(answer, "coreCount"),
        max_walltime=int_field(answer, "maxWalltime"),
        prod_source_label=text_field(answer, "prodSourceLabel"),
        looping_check=bool_field(answer, "loopingCheck", default=True),
    )

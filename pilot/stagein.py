"""Stage-in: copy the job's input files from the site storage directory."""

import logging
import os

from pilot import errors
from pilot.errors import PilotFailure
from pilot.files import copy_with_facts, is_safe_lfn, parse_checksum
from pilot.jobspec import InputFile

logger = logging.getLogger(__name__)


def stage_in(inputs: list[InputFile], storage_dir: str | None, workdir: str) -> None:
    """Copy every input into `workdir` and verify size and checksum.

    Raises PilotFailure with the pilot3 stage-in code of the first problem.
    """
    if not inputs:
        return
    if not storage_dir:
        raise PilotFailure(
            errors.STAGEINFAILED,
            f"job has {len(inputs)} input file(s) but the pilot has no --storage-dir to stage them in from",
        )
    for input_file in inputs:
        stage_in_file(input_file, storage_dir, workdir)


def stage_in_file(input_file: InputFile, storage_dir: str, workdir: str) -> None:
    lfn = input_file.lfn
    if not is_safe_lfn(lfn):
        raise PilotFailure(errors.STAGEINFAILED, f"refusing input file name {lfn!r}")
    source = os.path.join(storage_dir, lfn)
    if not os.path.isfile(source):
        raise PilotFailure(errors.MISSINGINPUTFILE, f"input file {lfn} not found in storage: {source}")
    expected = parse_checksum(input_file.checksum)
    destination = os.path.join(workdir, lfn)
    try:
        facts = copy_with_facts(source, destination, with_md5=bool(expected and expected[0] == "md5"))
    except OSError as exc:
        raise PilotFailure(errors.STAGEINFAILED, f"copying {lfn} failed: {exc}") from exc
    _verify(lfn, input_file.fsize, expected, facts)
    logger.info("staged in %s (%d bytes, adler32 %s)", lfn, facts.size, facts.adler32)


def _verify(lfn, expected_size, expected_checksum, facts) -> None:
    if expected_size is not None and facts.size != expected_size:
        raise PilotFailure(
            errors.STAGEINFAILED, f"size mismatch on input file {lfn}: catalog {expected_size}, local {facts.size}"
        )
    if expected_checksum is None:
        return
    kind, value = expected_checksum
    actual = facts.adler32 if kind == "adler32" else facts.md5
    if actual != value:
        code = errors.GETADMISMATCH if kind == "adler32" else errors.GETMD5MISMATCH
        raise PilotFailure(code, f"{kind} mismatch on input file {lfn}: catalog {value}, local {actual}")

"""Stage-in: bring the job's input files from the site storage into the work directory.

Each file goes through the site's mover (pilot/movers.py) on a thread of its
own with a deadline (pilot/deadline.py), and is checked against the size and
checksum the dispatcher sent.
"""

import logging
import os

from pilot import errors
from pilot.deadline import TransferInterrupted, TransferTimeout, run_with_deadline
from pilot.errors import PilotFailure
from pilot.files import is_safe_lfn, parse_checksum
from pilot.jobspec import InputFile
from pilot.movers import DEFAULT_POLICY, NotInStorage, StorageError, TransferPolicy, mover_for

logger = logging.getLogger(__name__)


def stage_in(
    inputs: list[InputFile], storage: str | None, workdir: str, policy: TransferPolicy = DEFAULT_POLICY
) -> None:
    """Copy every input into `workdir` and verify size and checksum.

    Raises PilotFailure with the pilot3 stage-in code of the first problem.
    """
    if not inputs:
        return
    if not storage:
        raise PilotFailure(
            errors.STAGEINFAILED,
            f"job has {len(inputs)} input file(s) but the pilot has no --storage-dir to stage them in from",
        )
    mover = mover_for(storage, policy.http_timeout)
    for input_file in inputs:
        stage_in_file(input_file, mover, workdir, policy)


def stage_in_file(input_file: InputFile, mover, workdir: str, policy: TransferPolicy) -> None:
    lfn = input_file.lfn
    if not is_safe_lfn(lfn):
        raise PilotFailure(errors.STAGEINFAILED, f"refusing input file name {lfn!r}")
    expected = parse_checksum(input_file.checksum)
    destination = os.path.join(workdir, lfn)
    with_md5 = bool(expected and expected[0] == "md5")
    facts = _transfer(lambda cancel: mover.fetch(lfn, destination, cancel, with_md5), lfn, mover, policy)
    _verify(lfn, input_file.fsize, expected, facts)
    logger.info("staged in %s (%d bytes, adler32 %s)", lfn, facts.size, facts.adler32)


def _transfer(work, lfn: str, mover, policy: TransferPolicy):
    """Run the mover's fetch with the deadline; turn its errors into pilot error codes."""
    try:
        return run_with_deadline(work, policy.timeout, f"stage-in {lfn}", policy.interrupt)
    except TransferTimeout as exc:
        raise PilotFailure(
            errors.STAGEINTIMEOUT,
            f"{errors.MESSAGES[errors.STAGEINTIMEOUT]}: {lfn} from {mover} {exc} (--stage-timeout)",
        ) from exc
    except TransferInterrupted as exc:
        raise PilotFailure(policy.interrupt.code, policy.interrupt.diag) from exc
    except NotInStorage as exc:
        raise PilotFailure(errors.MISSINGINPUTFILE, str(exc)) from exc
    except (StorageError, OSError) as exc:
        raise PilotFailure(errors.STAGEINFAILED, f"stage-in of {lfn} from {mover} failed: {exc}") from exc


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

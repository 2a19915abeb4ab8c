"""Stage-out: checksum the job's outputs, copy them to storage, build the log.

Each file goes to the site storage through its mover (pilot/movers.py: the
catalog's deterministic place) on a thread of its own with a deadline
(pilot/deadline.py). What was staged out is collected in an OutputReport,
which becomes the `xml` field of the final updateJob (a JSON object despite
the name, as in pilot3): {"<lfn>": {"guid", "fsize", "adler32", "surl"}};
the server registers each file at its `surl`.
"""

import json
import logging
import os
import stat
import tarfile
import uuid

from pilot import errors
from pilot.deadline import TransferInterrupted, TransferTimeout, run_with_deadline
from pilot.errors import PilotFailure
from pilot.files import FileFacts, file_facts, is_safe_lfn
from pilot.movers import DEFAULT_POLICY, StorageError, Stored, StoredCopyMismatch, TransferPolicy, mover_for

logger = logging.getLogger(__name__)

# Files bigger than this stay out of the log tarball (outputs have their own
# stage-out; the log is for diagnosing the job), except the always-included ones.
SMALL_FILE_LIMIT = 1024 * 1024


class OutputReport:
    """The files to declare to the server in the final update."""

    def __init__(self):
        self.entries: dict[str, dict] = {}

    def add(self, lfn: str, guid: str, facts: FileFacts, surl: str) -> None:
        self.entries[lfn] = {"guid": guid, "fsize": facts.size, "adler32": facts.adler32, "surl": surl}

    def to_xml(self) -> str:
        return json.dumps(self.entries, sort_keys=True)


def stage_out_outputs(
    lfns: list[str],
    workdir: str,
    storage: str | None,
    report: OutputReport,
    require_all: bool,
    policy: TransferPolicy = DEFAULT_POLICY,
) -> None:
    """Stage out every declared output that exists in `workdir`.

    require_all: a missing output is a failure (the payload claimed success).
    """
    missing = []
    for lfn in lfns:
        if not is_safe_lfn(lfn):
            raise PilotFailure(errors.BADOUTPUTFILENAME, f"refusing output file name {lfn!r}")
        path = os.path.join(workdir, lfn)
        if not os.path.isfile(path):
            missing.append(lfn)
            continue
        stage_out_file(path, lfn, str(uuid.uuid4()), storage, report, policy)
    if missing:
        logger.warning("declared output file(s) missing after the payload: %s", missing)
        if require_all:
            raise PilotFailure(errors.MISSINGOUTPUTFILE, "Local output file is missing: " + ",".join(missing))


def stage_out_file(
    path: str, lfn: str, guid: str, storage: str | None, report: OutputReport, policy: TransferPolicy = DEFAULT_POLICY
) -> None:
    """Checksum one file and, with a storage location, copy it there."""
    if not storage:
        # Nowhere to keep it: still declare it so the server sees what was made.
        report.add(lfn, guid, _facts_or_fail(path, lfn), surl="")
        return
    mover = mover_for(storage, policy.http_timeout)
    stored = _transfer(lambda cancel: mover.store(path, lfn, cancel), lfn, mover, policy)
    report.add(lfn, guid, stored.facts, surl=stored.surl)
    logger.info("staged out %s -> %s (%d bytes, adler32 %s)", lfn, stored.surl, stored.facts.size, stored.facts.adler32)


def _transfer(work, lfn: str, mover, policy: TransferPolicy) -> Stored:
    """Run the mover's store with the deadline; turn its errors into pilot error codes."""
    try:
        return run_with_deadline(work, policy.timeout, f"stage-out {lfn}", policy.interrupt)
    except TransferTimeout as exc:
        raise PilotFailure(
            errors.STAGEOUTTIMEOUT,
            f"{errors.MESSAGES[errors.STAGEOUTTIMEOUT]}: {lfn} to {mover} {exc} (--stage-timeout)",
        ) from exc
    except TransferInterrupted as exc:
        raise PilotFailure(policy.interrupt.code, policy.interrupt.diag) from exc
    except StoredCopyMismatch as exc:
        raise PilotFailure(errors.PUTADMISMATCH, str(exc)) from exc
    except (StorageError, OSError) as exc:
        raise PilotFailure(errors.STAGEOUTFAILED, f"stage-out of {lfn} to {mover} failed: {exc}") from exc


def _facts_or_fail(path: str, lfn: str) -> FileFacts:
    try:
        return file_facts(path)
    except OSError as exc:
        raise PilotFailure(errors.STAGEOUTFAILED, f"reading {lfn} failed: {exc}") from exc


def create_log_tarball(workdir: str, log_lfn: str, top_dir: str, exclude: set[str], always_include: set[str]) -> str:
    """Pack the work directory's small files into `<workdir>/<log_lfn>`.

    exclude: top-level names left out (inputs, outputs, the tarball itself).
    always_include: names kept whatever their size (payload stdout/stderr).
    """
    tarball_path = os.path.join(workdir, log_lfn)
    exclude = exclude | {log_lfn}
    try:
        with tarfile.open(tarball_path, "w:gz") as tarball:
            for relative_path in _log_candidates(workdir, exclude, always_include):
                tarball.add(
                    os.path.join(workdir, relative_path), arcname=os.path.join(top_dir, relative_path), recursive=False
                )
    except (OSError, tarfile.TarError) as exc:
        raise PilotFailure(errors.LOGFILECREATIONFAILURE, f"creating log tarball {log_lfn} failed: {exc}") from exc
    return tarball_path


def _log_candidates(workdir: str, exclude: set[str], always_include: set[str]) -> list[str]:
    selected = []
    for directory, subdirectories, filenames in os.walk(workdir):
        relative_dir = os.path.relpath(directory, workdir)
        if relative_dir == ".":
            subdirectories[:] = [d for d in subdirectories if d not in exclude]
        for name in filenames:
            relative_path = os.path.normpath(os.path.join(relative_dir, name))
            if relative_path in exclude:
                continue
            info = os.lstat(os.path.join(directory, name))
            # Symlinks and devices could point anywhere on the worker node.
            if not stat.S_ISREG(info.st_mode):
                continue
            if info.st_size <= SMALL_FILE_LIMIT or relative_path in always_include:
                selected.append(relative_path)
    return sorted(selected)

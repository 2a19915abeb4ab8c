"""`pilot_state.json` in PandaJob_<id>/: who runs the job and how far it got.

A pilot killed with SIGKILL, or a node that rebooted, leaves its work
directory behind without a final update. The next pilot on the node reads
this file to tell whether the directory is still in use (the recorded pilot
process is alive) and, if not, what is needed to finish the job
(pilot/recovery.py): the job description, the payload's result, the
outputs. The file is rewritten whole (temporary file + rename) at each step,
so a reader never sees half of it.

A process is recognised by pid, start time (ticks since boot, from
/proc/<pid>/stat) and boot id: a pid reused by another process, or the same
number after a reboot, is not mistaken for the pilot.

The running pilot also holds an flock on the job directory; the kernel drops
it when the process dies. Recovery takes the same lock before touching a
leftover, so two pilots starting together never recover the same job.
"""

import dataclasses
import fcntl
import json
import logging
import os
import uuid
from datetime import datetime
from enum import Enum

from pilot.jobspec import InputFile, JobSpec
from pilot.outcome import utc_now
from pilot.payload import PayloadResult

logger = logging.getLogger(__name__)

STATE_NAME = "pilot_state.json"
STATE_VERSION = 1
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"

# How far the job got; each step is recorded when it is done.
CREATED = "created"
STAGED_IN = "staged_in"
PAYLOAD_RUNNING = "payload_running"
PAYLOAD_FINISHED = "payload_finished"
OUTPUTS_STAGED_OUT = "outputs_staged_out"
FINAL_SAVED = "final_saved"  # final update not delivered: final_update.json holds it
FINAL_REJECTED = "final_rejected"  # the server refused it: left for an operator
DONE = "done"  # final update delivered (or the server had a final state already)


class Liveness(Enum):
    ALIVE = "alive"  # the recorded process is running
    GONE = "gone"  # no process has the pid (same boot)
    REUSED = "reused"  # another process has the pid now
    OTHER_BOOT = "other boot"  # recorded before the node rebooted


def boot_id() -> str | None:
    try:
        with open(BOOT_ID_PATH, encoding="ascii") as source:
            return source.read().strip() or None
    except OSError:
        return None


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state letter, start time in ticks) of a process, or None if there is none."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as source:
            text = source.read()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()  # the command name may hold spaces and ')'
    return fields[0], fields[19]


def process_identity(pid: int) -> dict:
    stat = _proc_stat(pid)
    return {"pid": pid, "start": stat[1] if stat else None, "boot_id": boot_id()}


def liveness(identity: dict | None) -> Liveness:
    """Whether the process `identity` names is still running on this node."""
    pid = (identity or {}).get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return Liveness.GONE
    recorded_boot, current_boot = identity.get("boot_id"), boot_id()
    if recorded_boot and current_boot and recorded_boot != current_boot:
        return Liveness.OTHER_BOOT
    if not os.path.isdir("/proc"):
        return _liveness_by_signal(pid)
    stat = _proc_stat(pid)
    if stat is None or stat[0] in ("Z", "X"):  # a zombie has died: only its parent has not noticed
        return Liveness.GONE
    if identity.get("start") not in (None, stat[1]):
        return Liveness.REUSED
    return Liveness.ALIVE


def _liveness_by_signal(pid: int) -> Liveness:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return Liveness.GONE
    except PermissionError:
        return Liveness.ALIVE
    return Liveness.ALIVE


def lock_directory(path: str) -> int | None:
    """An exclusive flock on directory `path`: the open fd, or None if another process holds it."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError:
        os.close(fd)
        raise
    return fd


def unlock_directory(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # closing the last fd releases the flock


def job_to_dict(job: JobSpec) -> dict:
    return dataclasses.asdict(job)


def job_from_dict(data: dict) -> JobSpec:
    known = {f.name for f in dataclasses.fields(JobSpec)}
    values = {key: value for key, value in data.items() if key in known}
    values["input_files"] = [InputFile(**item) for item in values.get("input_files") or []]
    values["output_files"] = list(values.get("output_files") or [])
    return JobSpec(**values)


class JobState:
    """The state file of one job directory."""

    def __init__(self, workdir: str, data: dict):
        self.workdir = workdir
        self.path = os.path.join(workdir, STATE_NAME)
        self.data = data

    @classmethod
    def create(cls, workdir: str, job: JobSpec, site: str, node: str, keep_workdir: bool) -> "JobState":
        data = {
            "version": STATE_VERSION,
            "pilot": process_identity(os.getpid()),
            "node": node,
            "site": site,
            "keep_workdir": keep_workdir,
            "job": job_to_dict(job),
            "job_start": utc_now().isoformat(),
            "progress": CREATED,
        }
        state = cls(workdir, data)
        state.save()
        return state

    @classmethod
    def load(cls, workdir: str) -> "JobState | None":
        """The recorded state; None if there is no state file. ValueError if it is unreadable."""
        path = os.path.join(workdir, STATE_NAME)
        try:
            with open(path, encoding="utf-8") as source:
                data = json.load(source)
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path} is unreadable: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("job"), dict):
            raise ValueError(f"{path} is not a pilot state file")
        return cls(workdir, data)

    @property
    def progress(self) -> str:
        return str(self.data.get("progress", ""))

    @property
    def job(self) -> JobSpec:
        return job_from_dict(self.data["job"])

    def record(self, progress: str, **fields) -> None:
        """Note a step; best effort (a full disk must not also fail the job)."""
        self.data.update(fields, progress=progress, updated=utc_now().isoformat())
        try:
            self.save()
        except OSError as exc:
            logger.warning("cannot record job progress %s in %s: %s", progress, self.path, exc)

    def save(self) -> None:
        temporary = f"{self.path}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            with open(temporary, "w", encoding="utf-8") as target:
                json.dump(self.data, target, indent=1, sort_keys=True)
            os.replace(temporary, self.path)
        except BaseException:
            try:
                os.unlink(temporary)
            except FileNotFoundError:
                pass
            raise


def result_to_dict(result: PayloadResult) -> dict:
    data = dataclasses.asdict(result)
    data["start_time"] = result.start_time.isoformat()
    data["end_time"] = result.end_time.isoformat()
    return data


def result_from_dict(data: dict | None) -> PayloadResult | None:
    if not data:
        return None
    known = {f.name for f in dataclasses.fields(PayloadResult)}
    values = {key: value for key, value in data.items() if key in known}
    values["start_time"] = datetime.fromisoformat(values["start_time"])
    values["end_time"] = datetime.fromisoformat(values["end_time"])
    return PayloadResult(**values)

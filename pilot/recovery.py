"""Recovery of jobs whose pilot died: run at start-up, before the first getJob.

A pilot killed with SIGKILL (batch system, OOM killer) or a node that
rebooted leaves PandaJob_<id>/ in the work area and its job without a final
update: the server would only notice after the heartbeat timeout, fail the
job with a lost-heartbeat error, and the outputs the payload made would be
lost with the directory. The next pilot on the node finishes the reporting
instead, following pilot1's job recovery:

- a directory still in use (its pilot process alive, or its lock held) is
  left alone, and so is one without a readable state file (not ours to
  judge) or from another node;
- a job the server has as final, unknown, already reported (holding), or at
  another attempt: the directory is just removed;
- a saved undelivered final update (final_update.json) is resent;
- a payload that finished successfully with all its declared outputs
  present: the outputs are staged out and `finished` is sent with the
  output report;
- anything else: `failed` with pilot error 1153 (LOSTJOBNOTFINISHED) and a
  diag saying the job was recovered after its pilot died.

After a delivered final update the directory is removed (unless
--keep-workdir). Every decision is logged.
"""

import json
import logging
import os
import re
import shutil
import signal
import threading
import uuid
from datetime import datetime

from pilot import errors
from pilot.client import ClientError, CredentialRefused, PandaClient, ServerUnreachable
from pilot.errors import PilotFailure
from pilot.heartbeat import JobReporter
from pilot.jobrun import FINAL_UPDATE_DUMP, PILOT_LOG_NAME, job_log_file, save_final_update
from pilot.jobspec import JobSpec
from pilot.jobstate import (
    DONE,
    FINAL_REJECTED,
    FINAL_SAVED,
    OUTPUTS_STAGED_OUT,
    PAYLOAD_RUNNING,
    JobState,
    Liveness,
    liveness,
    lock_directory,
    result_from_dict,
    unlock_directory,
)
from pilot.movers import TransferPolicy
from pilot.outcome import JobOutcome, final_update_fields, utc_now
from pilot.payload import STDERR_NAME, STDOUT_NAME, KillSwitch, PayloadResult, combined_output_tail, last_stderr_line
from pilot.settings import PilotSettings
from pilot.stageout import OutputReport, create_log_tarball, stage_out_file, stage_out_outputs

logger = logging.getLogger(__name__)

JOB_DIRECTORY = re.compile(r"PandaJob_(\d+)")
# Server states in which the job still waits for this pilot's final update.
AWAITING_PILOT = frozenset({"sent", "starting", "running"})


def find_leftovers(workdir: str) -> list[str]:
    """The PandaJob_<id>/ directories in `workdir`, oldest PandaID first."""
    try:
        names = os.listdir(workdir)
    except OSError as exc:
        logger.warning("recovery: cannot list %s: %s", workdir, exc)
        return []
    found = [name for name in names if JOB_DIRECTORY.fullmatch(name) and os.path.isdir(os.path.join(workdir, name))]
    return [os.path.join(workdir, name) for name in sorted(found, key=lambda n: int(n.split("_")[1]))]


def recover_leftovers(
    settings: PilotSettings, client: PandaClient, stop: threading.Event | None = None, interrupt=None
) -> dict[str, str]:
    """Examine every leftover job directory; returns {path: decision}.

    stop: checked between directories (a shutdown signal). interrupt: the
    KillSwitch that aborts a running stage-out.
    """
    decisions = {}
    for path in find_leftovers(settings.workdir):
        if stop is not None and stop.is_set():
            break
        try:
            decisions[path] = Leftover(path, settings, client, interrupt).recover()
        except (ServerUnreachable, CredentialRefused) as exc:
            # Left for the next pilot; getJob will tell whether this one can work at all.
            logger.error("recovery stopped at %s (left for the next pilot): %s", path, exc)
            break
        except Exception:  # one odd directory must not keep the pilot from working
            logger.exception("recovery of %s failed; directory left as it is", path)
            decisions[path] = "error"
            continue
        logger.info("recovery of %s: %s", path, decisions[path])
    return decisions


class Leftover:
    """One PandaJob_<id>/ directory found at start-up."""

    def __init__(self, path: str, settings: PilotSettings, client: PandaClient, interrupt=None):
        self.path = path
        self.settings = settings
        self.client = client
        self.policy = TransferPolicy(settings.stage_timeout, settings.http_timeout, interrupt)

    def recover(self) -> str:
        """Decide what to do with the directory, do it, and say what was done."""
        try:
            state = JobState.load(self.path)
        except ValueError as exc:
            return f"left alone: {exc}"
        if state is None:
            return "left alone: no pilot_state.json (not a directory of this pilot, or its pilot is just starting)"
        busy = self._in_use(state)
        if busy:
            return f"left alone: {busy}"
        try:
            lock = lock_directory(self.path)
        except OSError as exc:
            return f"left alone: cannot lock it: {exc}"
        if lock is None:
            return "left alone: another pilot holds its lock"
        try:
            # Read again under the lock: another pilot may have just recovered it.
            state = JobState.load(self.path)
            if state is None:
                return "left alone: recovered by another pilot meanwhile"
            return self._recover_locked(state)
        finally:
            unlock_directory(lock)

    def _in_use(self, state: JobState) -> str:
        node, site = state.data.get("node"), state.data.get("site")
        if node != self.settings.node:
            return f"it belongs to a pilot on node {node!r}"
        if site != self.settings.site:  # our credential may not be good for that site's jobs
            return f"it belongs to a pilot of site {site!r}"
        pilot = state.data.get("pilot") or {}
        if liveness(pilot) is Liveness.ALIVE:
            return f"in use by the live pilot process {pilot.get('pid')}"
        return ""

    def _recover_locked(self, state: JobState) -> str:
        if state.progress == DONE:
            if state.data.get("keep_workdir"):
                return "left alone: its final update was delivered; kept by --keep-workdir"
            return self._remove(state, "its final update was delivered already")
        self._stop_orphaned_payload(state)
        job = state.job
        status, attempt = self.client.get_status([job.panda_id])[job.panda_id]
        logger.info(
            "recovery: job %d (attempt %d) left by dead pilot %s; server status %r (attempt %s); progress %r",
            job.panda_id,
            job.attempt_nr,
            (state.data.get("pilot") or {}).get("pid"),
            status,
            attempt or "?",
            state.progress,
        )
        if status not in AWAITING_PILOT:
            return self._remove(state, f"the server has the job as {status!r}: nothing to report")
        if attempt and attempt != str(job.attempt_nr):
            return self._remove(state, f"the server is at attempt {attempt}, the directory holds {job.attempt_nr}")
        if state.progress == FINAL_REJECTED:
            return "left alone: the server rejected its final update (final_update.json); for an operator"
        return self._deliver(state, self._final_form(state, job))

    def _stop_orphaned_payload(self, state: JobState) -> None:
        """The payload has a session of its own and outlives a SIGKILLed pilot: stop it
        before the directory it writes into is reported and removed."""
        payload = state.data.get("payload")
        if state.progress != PAYLOAD_RUNNING or not payload:
            return
        if liveness(payload) in (Liveness.REUSED, Liveness.OTHER_BOOT):
            return  # that number is somebody else's now
        try:
            os.killpg(payload["pid"], signal.SIGKILL)
        except ProcessLookupError:
            return
        except PermissionError as exc:
            logger.warning("recovery: cannot stop the orphaned payload group %s: %s", payload["pid"], exc)
            return
        logger.warning(
            "recovery: killed the payload of job %s (process group %d) that outlived its pilot",
            state.data["job"].get("panda_id"),
            payload["pid"],
        )

    # -- the final update -----------------------------------------------

    def _final_form(self, state: JobState, job: JobSpec) -> dict:
        saved = self._saved_final()
        if saved is not None:
            logger.info("recovery: resending the saved final update of job %d (%s)", job.panda_id, saved.get("state"))
            return saved
        with job_log_file(self.path):
            return self._build_final(state, job)

    def _saved_final(self) -> dict | None:
        path = os.path.join(self.path, FINAL_UPDATE_DUMP)
        try:
            with open(path, encoding="utf-8") as source:
                form = json.load(source)
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            logger.warning("recovery: ignoring unreadable %s: %s", path, exc)
            return None
        return form if isinstance(form, dict) and form.get("jobId") else None

    def _build_final(self, state: JobState, job: JobSpec) -> dict:
        outcome, report = JobOutcome(), OutputReport()
        result = result_from_dict(state.data.get("result"))
        missing = [lfn for lfn in job.output_files if not os.path.isfile(os.path.join(self.path, lfn))]
        if result is not None and _payload_succeeded(state, result) and not missing:
            outcome.record_exit(0, "")
            self._recover_outputs(state, job, outcome, report)
        else:
            if result is not None:
                outcome.record_exit(result.shell_exit_code, last_stderr_line(self.path))
            reason = _not_finished_reason(state, result, missing)
            logger.warning("recovery: job %d cannot be finished: %s", job.panda_id, reason)
            outcome.fail_pilot(errors.LOSTJOBNOTFINISHED, f"{self._recovered_note(state)}: {reason}")
        self._stage_out_log(state, job, outcome, report)
        fields = final_update_fields(outcome, result, report, combined_output_tail(self.path), _job_start(state))
        reporter = JobReporter(self.client, job, self.settings.site, self.settings.node, KillSwitch(), final_tries=1)
        return reporter.form(outcome.state, fields)

    def _recover_outputs(self, state: JobState, job: JobSpec, outcome: JobOutcome, report: OutputReport) -> None:
        recorded = state.data.get("outputs")
        if state.progress == OUTPUTS_STAGED_OUT and isinstance(recorded, dict):
            logger.info("recovery: outputs of job %d were staged out before the pilot died", job.panda_id)
            report.entries.update(recorded)
            return
        logger.info("recovery: payload of job %d had finished: staging out %s", job.panda_id, job.output_files)
        try:
            stage_out_outputs(job.output_files, self.path, self.settings.storage_dir, report, True, self.policy)
        except PilotFailure as failure:
            outcome.fail_pilot(errors.LOSTJOBFILETRANSFER, f"{self._recovered_note(state)}: {failure.diag}")

    def _stage_out_log(self, state: JobState, job: JobSpec, outcome: JobOutcome, report: OutputReport) -> None:
        if not job.log_file:
            return
        exclude = {f.lfn for f in job.input_files} | set(job.output_files)
        keep = {STDOUT_NAME, STDERR_NAME, PILOT_LOG_NAME}
        try:
            path = create_log_tarball(self.path, job.log_file, f"PandaJob_{job.panda_id}", exclude, keep)
            guid = job.log_guid or str(uuid.uuid4())
            stage_out_file(path, job.log_file, guid, self.settings.storage_dir, report, self.policy)
        except PilotFailure as failure:
            logger.error("recovery: log of job %d: %s", job.panda_id, failure)
            outcome.fail_pilot(errors.LOSTJOBFILETRANSFER, f"{self._recovered_note(state)}: {failure.diag}")

    def _recovered_note(self, state: JobState) -> str:
        pilot = state.data.get("pilot") or {}
        return f"job recovered after the previous pilot (pid {pilot.get('pid')} on {state.data.get('node')}) died"

    def _deliver(self, state: JobState, form: dict) -> str:
        try:
            answer = self.client.update_job(form, tries=2 * self.settings.max_tries, insist=True)
        except (ServerUnreachable, CredentialRefused):
            self._keep_final(state, form, FINAL_SAVED)
            raise
        except ClientError as exc:  # BadRequest, ProtocolError: repeating won't help
            self._keep_final(state, form, FINAL_REJECTED)
            return f"kept: the server rejected the final update {form.get('state')}: {exc}"
        command = answer.get("command") or "NULL"
        return self._remove(state, f"final update {form.get('state')} delivered (server command {command})")

    def _keep_final(self, state: JobState, form: dict, progress: str) -> None:
        save_final_update(os.path.join(self.path, FINAL_UPDATE_DUMP), form)
        state.record(progress)

    def _remove(self, state: JobState, why: str) -> str:
        if self.settings.keep_workdir:
            state.record(DONE)  # examined once: the next pilot leaves it alone
            return f"{why}; directory kept (--keep-workdir)"
        shutil.rmtree(self.path, ignore_errors=True)
        return f"{why}; directory removed"


def _payload_succeeded(state: JobState, result: PayloadResult) -> bool:
    recorded = state.data.get("outcome") or {}
    return result.exit_code == 0 and not result.killed_by_pilot and recorded.get("state", "finished") == "finished"


def _not_finished_reason(state: JobState, result: PayloadResult | None, missing: list[str]) -> str:
    if result is None:
        return f"the payload had not finished (last step: {state.progress})"
    if not _payload_succeeded(state, result):
        return f"the payload ended with exit code {result.shell_exit_code}"
    return "declared output(s) missing: " + ",".join(missing)


def _job_start(state: JobState) -> datetime:
    try:
        return datetime.fromisoformat(state.data["job_start"])
    except (KeyError, TypeError, ValueError):
        return utc_now()

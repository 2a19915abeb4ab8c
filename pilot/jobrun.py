"""Run one job from start to final update.

starting -> stage-in -> payload (running + heartbeats, the looping-job
killer watching its work directory) -> stage-out of the outputs -> log
tarball -> finished/failed. Whatever goes wrong on the pilot
side, the job still ends with a final `failed` update carrying a pilot error
code, unless the server said it already has a final state.

Each step is recorded in the job directory's state file (pilot/jobstate.py),
so that if this pilot dies without a final update, the next pilot on the
node can finish the job's reporting (pilot/recovery.py).
"""

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import uuid

from pilot import errors, jobstate
from pilot.client import ClientError, CredentialRefused, PandaClient, ServerUnreachable
from pilot.errors import PilotFailure
from pilot.files import is_safe_lfn
from pilot.heartbeat import HeartbeatThread, JobReporter
from pilot.jobspec import JobSpec
from pilot.jobstate import JobState, lock_directory, process_identity, result_to_dict, unlock_directory
from pilot.looping import LoopingMonitor, looping_check_enabled
from pilot.movers import TransferPolicy
from pilot.outcome import JobOutcome, final_update_fields, utc_now
from pilot.payload import (
    STDERR_NAME,
    STDOUT_NAME,
    KillSwitch,
    PayloadResult,
    combined_output_tail,
    last_stderr_line,
    payload_environment,
    start_payload,
)
from pilot.peek import Peeker
from pilot.settings import PilotSettings
from pilot.stagein import stage_in
from pilot.stageout import OutputReport, create_log_tarball, stage_out_file, stage_out_outputs
from pilot.transformation import build_command

logger = logging.getLogger(__name__)

PILOT_LOG_NAME = "pilot.log"
FINAL_UPDATE_DUMP = "final_update.json"
ABANDONED = "abandoned"


@contextlib.contextmanager
def job_log_file(workdir: str):
    """Copy the pilot's own log lines for this job into the work directory
    (and so into the log tarball), where the job's owner can read them."""
    handler = logging.FileHandler(os.path.join(workdir, PILOT_LOG_NAME))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


class JobRun:
    """One job on this worker node."""

    def __init__(self, job: JobSpec, settings: PilotSettings, client: PandaClient, kill_switch: KillSwitch):
        self.job = job
        self.settings = settings
        self.kill_switch = kill_switch
        self.reporter = JobReporter(
            client, job, settings.site, settings.node, kill_switch, final_tries=2 * settings.max_tries
        )
        self.outcome = JobOutcome()
        self.report = OutputReport()
        self.result: PayloadResult | None = None
        self.workdir = os.path.abspath(os.path.join(settings.workdir, f"PandaJob_{job.panda_id}"))
        self.job_start = utc_now()
        self.workdir_created = False
        self.state: JobState | None = None
        self._lock_fd: int | None = None
        self.policy = TransferPolicy(settings.stage_timeout, settings.http_timeout, kill_switch)

    def run(self) -> str:
        """Run the job; return its final state (or 'abandoned')."""
        logger.info(
            "job %d (%s) attempt %d: transformation %.200r",
            self.job.panda_id,
            self.job.job_name,
            self.job.attempt_nr,
            self.job.transformation,
        )
        try:
            if self._guarded(self._create_workdir):
                with job_log_file(self.workdir):
                    self._guarded(self._execute)
                self._guarded(self._stage_out_log)
            delivered = self._send_final()
            self._clean_up(delivered)
        finally:
            unlock_directory(self._lock_fd)
        state = ABANDONED if self.reporter.already_done else self.outcome.state
        logger.info("job %d ended: %s", self.job.panda_id, state)
        return state

    def _guarded(self, step) -> bool:
        """Run a step; turn any pilot-side error into a failed outcome."""
        try:
            step()
            return True
        except PilotFailure as failure:
            logger.error("job %d: %s", self.job.panda_id, failure)
            self.outcome.fail_pilot(failure.code, failure.diag)
        except CredentialRefused:
            raise
        except Exception as exc:  # the job must still get its final update
            logger.exception("job %d: pilot error", self.job.panda_id)
            self.outcome.fail_pilot(errors.GENERALERROR, f"pilot exception: {type(exc).__name__}: {exc}")
        return False

    def _create_workdir(self) -> None:
        try:
            os.makedirs(self.workdir)
            self.workdir_created = True
        except FileExistsError as exc:
            # Not ours to delete: another pilot, or evidence of an earlier crash.
            raise PilotFailure(errors.FILEEXISTS, f"work directory {self.workdir} already exists") from exc
        except OSError as exc:
            raise PilotFailure(errors.MKDIR, f"cannot create {self.workdir}: {exc}") from exc
        # The lock and the state file tell later pilots the directory is in use (pilot/recovery.py).
        try:
            self._lock_fd = lock_directory(self.workdir)
        except OSError as exc:  # a file system without flock: the state file's pid still tells
            logger.warning("cannot lock %s: %s", self.workdir, exc)
        settings = self.settings
        self.state = JobState.create(self.workdir, self.job, settings.site, settings.node, settings.keep_workdir)

    def _record(self, progress: str, **fields) -> None:
        if self.state is not None:
            self.state.record(progress, **fields)

    def _stopped(self) -> bool:
        """True (and the outcome set) if the job was asked to stop."""
        if self.kill_switch.is_set():
            self.outcome.fail_pilot(self.kill_switch.code, self.kill_switch.diag)
            return True
        return False

    def _execute(self) -> None:
        self.reporter.send_state("starting")
        if self._stopped():
            return
        with self._heartbeats_while("starting"):
            stage_in(self.job.input_files, self.settings.storage_dir, self.workdir, self.policy)
        self._record(jobstate.STAGED_IN)
        command = build_command(
            self.job.transformation,
            self.job.job_pars,
            self.workdir,
            server=self.settings.server,
            credential=self.settings.credential,
        )
        if self._stopped():
            return
        self._run_payload(command)
        self._judge_payload()
        self._record(
            jobstate.PAYLOAD_FINISHED, result=result_to_dict(self.result), outcome=dataclasses.asdict(self.outcome)
        )
        if not self.reporter.already_done:
            with self._heartbeats_while("running"):
                stage_out_outputs(
                    self.job.output_files,
                    self.workdir,
                    self.settings.storage_dir,
                    self.report,
                    require_all=not self.outcome.failed,
                    policy=self.policy,
                )
            self._record(jobstate.OUTPUTS_STAGED_OUT, outputs=self.report.entries)

    @contextlib.contextmanager
    def _heartbeats_while(self, state: str):
        """Heartbeats in `state` while files move: a stage-in or stage-out longer than the site's
        heartbeat timeout would otherwise have the server fail a working job as lost."""
        heartbeat = HeartbeatThread(self.reporter, self.settings.heartbeat, lambda: None, state=state)
        heartbeat.start()
        try:
            yield
        finally:
            heartbeat.stop(timeout=self.settings.http_timeout + 5)

    def _run_payload(self, command: list[str]) -> None:
        environment = payload_environment(
            {
                "PANDAID": str(self.job.panda_id),
                "PANDA_SITE": self.settings.site,
                "PANDA_WORKDIR": self.workdir,
            }
        )
        payload = start_payload(command, self.workdir, environment)
        self._record(jobstate.PAYLOAD_RUNNING, payload=process_identity(payload.pid))
        heartbeat = HeartbeatThread(
            self.reporter,
            self.settings.heartbeat,
            payload.usage_so_far,
            peeker=Peeker(self.workdir, payload.pid),
            debug_interval=self.settings.debug_heartbeat,
        )
        looping = self._looping_monitor()
        try:
            self.reporter.send_state("running")
            heartbeat.start()
            if looping is not None:
                looping.start()
            self.result = payload.wait(self.kill_switch, self.settings.kill_grace)
        finally:
            if looping is not None:
                looping.stop()
            heartbeat.stop(timeout=self.settings.http_timeout + 5)
            if self.result is None:  # an exception above: do not leave it running
                self.result = payload.kill(self.settings.kill_grace)

    def _looping_monitor(self) -> LoopingMonitor | None:
        if not looping_check_enabled(self.job):
            logger.info("job %d: no looping check (loopingCheck=False)", self.job.panda_id)
            return None
        return LoopingMonitor(self.workdir, self.settings.looping_timeout, self.kill_switch)

    def _judge_payload(self) -> None:
        result = self.result
        self.outcome.record_exit(result.shell_exit_code, last_stderr_line(self.workdir))
        if result.killed_by_pilot:
            self.outcome.fail_pilot(self.kill_switch.code, self.kill_switch.diag)
        elif result.term_signal:
            name = errors.signal_name(result.term_signal)
            self.outcome.fail_pilot(
                errors.payload_signal_error_code(result.term_signal),
                f"payload killed by signal {name} ({result.term_signal})",
            )

    def _stage_out_log(self) -> None:
        log_lfn = self.job.log_file
        if not log_lfn or self.reporter.already_done:
            return
        if not is_safe_lfn(log_lfn):
            raise PilotFailure(errors.BADOUTPUTFILENAME, f"refusing log file name {log_lfn!r}")
        exclude = {f.lfn for f in self.job.input_files} | set(self.job.output_files)
        path = create_log_tarball(
            self.workdir,
            log_lfn,
            f"PandaJob_{self.job.panda_id}",
            exclude,
            always_include={STDOUT_NAME, STDERR_NAME, PILOT_LOG_NAME},
        )
        guid = self.job.log_guid or str(uuid.uuid4())
        with self._heartbeats_while("running"):
            stage_out_file(path, log_lfn, guid, self.settings.storage_dir, self.report, self.policy)

    def _final_fields(self) -> dict:
        pilot_log = combined_output_tail(self.workdir) if self.workdir_created else ""
        return final_update_fields(self.outcome, self.result, self.report, pilot_log, self.job_start)

    def _send_final(self) -> bool:
        """Deliver the final update; False if it was rejected or undeliverable."""
        if self.reporter.already_done:
            self._record(jobstate.DONE)
            return True
        fields = self._final_fields()
        if self.reporter.fatal_error:
            self._save_final(fields)
            raise self.reporter.fatal_error
        try:
            self.reporter.send_final(self.outcome.state, fields)
        except (ServerUnreachable, CredentialRefused):
            self._save_final(fields)
            raise  # the pilot cannot go on without the server
        except ClientError as exc:  # BadRequest, ProtocolError: repeating won't help
            logger.error("final update of job %d rejected: %s", self.job.panda_id, exc)
            self._save_final(fields, rejected=True)
            return False
        self._record(jobstate.DONE)
        return True

    def _save_final(self, fields: dict, rejected: bool = False) -> None:
        """Keep an undelivered final update next to the job's files: the next
        pilot on this node resends it (pilot/recovery.py), unless the server
        rejected it, which is for an operator to look at."""
        if not self.workdir_created:
            return
        path = os.path.join(self.workdir, FINAL_UPDATE_DUMP)
        save_final_update(path, self.reporter.form(self.outcome.state, fields))
        self._record(jobstate.FINAL_REJECTED if rejected else jobstate.FINAL_SAVED)
        logger.error("final update of job %d NOT delivered; saved in %s (work directory kept)", self.job.panda_id, path)

    def _clean_up(self, final_delivered: bool) -> None:
        if self.settings.keep_workdir or not final_delivered or not self.workdir_created:
            return
        shutil.rmtree(self.workdir, ignore_errors=True)


def save_final_update(path: str, form: dict) -> None:
    with open(path, "w", encoding="utf-8") as dump:
        json.dump(form, dump, indent=1)


def run_job(job: JobSpec, settings: PilotSettings, client: PandaClient, kill_switch: KillSwitch) -> str:
    return JobRun(job, settings, client, kill_switch).run()

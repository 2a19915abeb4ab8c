"""The pilot's main loop: recover leftovers, then ask for a job, run it, repeat.

At start-up the pilot first finishes the reporting of jobs whose pilot died
on this node (pilot/recovery.py, unless --no-recovery), and reports its
storage's space (pilot/space.py), which it does again after every job.

Fatal client errors (server unreachable after retries, credential refused,
a getJob the server calls malformed) propagate to the caller, which turns
them into the exit code.
"""

import dataclasses
import logging
import signal
import threading

from pilot import errors, signature
from pilot.client import (
    SC_NO_JOBS,
    SC_SUCCESS,
    BadRequest,
    PandaClient,
    ProtocolError,
    RequestAborted,
    error_dialog,
)
from pilot.heartbeat import JobReporter
from pilot.jobrun import run_job
from pilot.jobspec import JobSpec, parse_job
from pilot.outcome import JobOutcome, final_update_fields, utc_now
from pilot.payload import KillSwitch
from pilot.recovery import recover_leftovers
from pilot.settings import PilotSettings
from pilot.space import report_storage_space
from pilot.stageout import OutputReport
from pilot.sysinfo import cpu_mhz, free_disk_mb, memory_mb

logger = logging.getLogger(__name__)

# Signals a batch system sends before killing a pilot (or a user's Ctrl-C).
SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGXCPU)


def make_client(settings: PilotSettings) -> PandaClient:
    return PandaClient(
        settings.server,
        settings.credential,
        max_tries=settings.max_tries,
        base_delay=settings.retry_delay,
        max_delay=settings.max_retry_delay,
        timeout=settings.http_timeout,
    )


def refuse_job(job: JobSpec, settings: PilotSettings, client: PandaClient) -> str:
    """Report a refused job `failed` (JOBSIGNATUREINVALID) without creating, staging or running anything."""
    outcome = JobOutcome()
    outcome.fail_pilot(errors.JOBSIGNATUREINVALID, f"job signature check failed: {job.refusal}")
    reporter = JobReporter(client, job, settings.site, settings.node, KillSwitch(), 2 * settings.max_tries)
    try:
        reporter.send_final(outcome.state, final_update_fields(outcome, None, OutputReport(), "", utc_now()))
    except (BadRequest, ProtocolError) as exc:  # an unreachable server or a refused credential stays fatal
        logger.error("final update of refused job %d rejected: %s", job.panda_id, exc)
    return outcome.state


class Pilot:
    """Holds what outlives a single job: settings, client, shutdown state."""

    def __init__(self, settings: PilotSettings, client: PandaClient | None = None):
        self.settings = settings
        self.client = client or make_client(settings)
        self.shutdown = threading.Event()
        self.shutdown_signal: int | None = None
        self.current_kill_switch: KillSwitch | None = None
        self.jobs_run = 0
        self._memory_mb = memory_mb()
        self._cpu_mhz = cpu_mhz()

    def install_signal_handlers(self) -> None:
        for signum in SHUTDOWN_SIGNALS:
            signal.signal(signum, self.on_signal)

    def on_signal(self, signum, frame) -> None:
        """Stop asking for jobs; stop the running payload and report it."""
        name = errors.signal_name(signum)
        logger.warning("pilot received %s: shutting down", name)
        self.shutdown_signal = self.shutdown_signal or signum
        self.shutdown.set()
        if self.current_kill_switch is not None:
            self.current_kill_switch.trigger(errors.signal_error_code(signum), f"pilot received {name}")

    def run(self) -> None:
        """Loop until --once / --max-jobs / --max-idle-polls / a shutdown signal says stop."""
        logger.info(
            "pilot for site %s on %s talking to %s", self.settings.site, self.settings.node, self.settings.server
        )
        if not self.settings.storage_dir:
            logger.warning("no --storage-dir: outputs are declared but not kept")
        if self.settings.recovery:
            self.recover()
        self.report_space()
        idle_polls = 0
        while not self.shutdown.is_set():
            job = self.request_job()
            if job is not None:
                self.run_one(job)
                self.report_space()
            if self._should_stop(got_job=job is not None):
                break
            idle_polls = 0 if job is not None else idle_polls + 1
            if idle_polls and idle_polls == self.settings.max_idle_polls:
                logger.info("no job in %d getJob call(s) in a row: leaving", idle_polls)
                break
            if job is None and self.shutdown.wait(self.settings.idle_sleep):
                break

    def recover(self) -> dict[str, str]:
        """Finish what dead pilots left in the work area (a signal stops it, like a job)."""
        kill_switch = KillSwitch()
        self.current_kill_switch = kill_switch
        try:
            return recover_leftovers(self.settings, self.client, stop=self.shutdown, interrupt=kill_switch)
        finally:
            self.current_kill_switch = None

    def report_space(self) -> bool:
        return report_storage_space(self.client, self.settings.site, self.settings.storage_dir)

    def _should_stop(self, got_job: bool) -> bool:
        if self.settings.once or self.shutdown.is_set():
            return True
        max_jobs = self.settings.max_jobs
        return bool(got_job and max_jobs and self.jobs_run >= max_jobs)

    def getjob_form(self) -> dict:
        settings = self.settings
        form = {
            "siteName": settings.site,
            "computingElement": settings.site,
            "node": settings.node,
            "mem": self._memory_mb,
            "diskSpace": free_disk_mb(settings.workdir),
            "cpu": self._cpu_mhz,
            "workingGroup": "",
        }
        if settings.prod_source_label:
            form["prodSourceLabel"] = settings.prod_source_label
        return form

    def request_job(self) -> JobSpec | None:
        try:
            answer = self.client.get_job(self.getjob_form(), abort=self.shutdown)
        except RequestAborted:
            return None  # a shutdown signal came while we waited to retry
        status = answer["StatusCode"]
        if status == SC_SUCCESS:
            return self.check_signature(parse_job(answer), answer)
        if status == SC_NO_JOBS:
            logger.info("no job: %s", error_dialog(answer))
        else:
            # pilot3 also treats any other status as "no job this time".
            logger.warning("getJob answered StatusCode %s: %s", status, error_dialog(answer))
        return None

    def check_signature(self, job: JobSpec, answer: dict) -> JobSpec:
        """Verify the job's signature right after getJob, before anything of it is used
        (docs/job-signing.md); a job that does not verify comes back marked refused."""
        keys = self.settings.signing_keys
        problem = None if keys is None else signature.check_job(answer, keys)
        if problem is None:
            return job
        logger.error("job %d refused, it will not run: %s", job.panda_id, problem)
        return dataclasses.replace(job, refusal=problem)

    def run_one(self, job: JobSpec) -> str:
        if job.refusal:
            try:
                return refuse_job(job, self.settings, self.client)
            finally:
                self.jobs_run += 1
        kill_switch = KillSwitch()
        self.current_kill_switch = kill_switch
        if self.shutdown_signal:  # the signal came between getJob and now
            kill_switch.trigger(
                errors.signal_error_code(self.shutdown_signal),
                f"pilot received {errors.signal_name(self.shutdown_signal)}",
            )
        try:
            return run_job(job, self.settings, self.client, kill_switch)
        finally:
            self.current_kill_switch = None
            self.jobs_run += 1

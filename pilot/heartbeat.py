"""updateJob for one job: state changes, periodic heartbeats, server commands.

One JobReporter per job serialises every updateJob of that job behind a
lock, so a heartbeat can never reach the server after the final update.
"""

import logging
import threading
from collections.abc import Callable

from pilot import errors
from pilot.client import SC_SUCCESS, ClientError, CredentialRefused, PandaClient, error_dialog
from pilot.jobspec import JobSpec
from pilot.outcome import utc_now
from pilot.payload import KillSwitch

logger = logging.getLogger(__name__)

KILL_COMMAND = "tobekilled"
ALREADY_DONE_COMMAND = "alreadydone"


def parse_commands(command) -> list[str]:
    """'debug,tobekilled' -> ['debug', 'tobekilled']; 'NULL' -> []."""
    if not command:
        return []
    return [c.strip().lower() for c in str(command).split(",") if c.strip() not in ("", "NULL")]


def usage_fields(usage: tuple[float, int] | None) -> dict:
    if not usage:
        return {}
    cpu_seconds, max_rss_kb = usage
    return {"cpuConsumptionTime": round(cpu_seconds), "cpuConsumptionUnit": "s", "maxRSS": max_rss_kb}


class JobReporter:
    """Sends a job's updateJob calls and acts on the commands in the answers."""

    def __init__(
        self, client: PandaClient, job: JobSpec, site: str, node: str, kill_switch: KillSwitch, final_tries: int
    ):
        self._client = client
        self._job = job
        self._site = site
        self._node = node
        self._kill_switch = kill_switch
        self._final_tries = final_tries
        self._lock = threading.Lock()
        self.closed = False  # no further update may be sent
        self.already_done = False  # the server has a final state already
        self.fatal_error: CredentialRefused | None = None

    def form(self, state: str, extra: dict | None = None) -> dict:
        form = {
            "jobId": self._job.panda_id,
            "state": state,
            "attemptNr": self._job.attempt_nr,
            "siteName": self._site,
            "node": self._node,
            "timestamp": utc_now().isoformat(timespec="seconds"),
        }
        form.update(extra or {})
        return form

    def send_state(self, state: str, extra: dict | None = None, abort: threading.Event | None = None) -> None:
        """A non-final update (starting, running). Failures are logged only:
        the next heartbeat tries again and the final update insists."""
        with self._lock:
            if self.closed:
                return
            try:
                answer = self._client.update_job(self.form(state, extra), abort=abort)
            except CredentialRefused as exc:
                self._on_credential_refused(exc)
                return
            except ClientError as exc:
                logger.warning("updateJob %s for job %d failed: %s", state, self._job.panda_id, exc)
                return
            self._handle_answer(state, answer)

    def send_final(self, state: str, extra: dict) -> None:
        """The finished/failed update: retried until StatusCode 0 or out of tries.

        Raises ServerUnreachable, BadRequest, ProtocolError or
        CredentialRefused when the server did not take it.
        """
        with self._lock:
            self.closed = True
            answer = self._client.update_job(self.form(state, extra), tries=self._final_tries, insist=True)
            logger.info("final update %s for job %d accepted", state, self._job.panda_id)
            self._handle_answer(state, answer)

    def _handle_answer(self, state: str, answer: dict) -> None:
        if answer.get("StatusCode") != SC_SUCCESS:
            logger.warning(
                "updateJob %s answered StatusCode %s: %s", state, answer.get("StatusCode"), error_dialog(answer)
            )
        for command in parse_commands(answer.get("command")):
            self._apply_command(command)

    def _apply_command(self, command: str) -> None:
        if command == KILL_COMMAND:
            logger.warning("server asks to kill job %d", self._job.panda_id)
            self._kill_switch.trigger(errors.PANDAKILL, errors.MESSAGES[errors.PANDAKILL])
        elif command == ALREADY_DONE_COMMAND:
            logger.warning(
                "server already has a final state for job %d; stopping without reporting again", self._job.panda_id
            )
            self.already_done = True
            self.closed = True
            self._kill_switch.trigger(errors.PANDAKILL, "server says the job is already done", report_final=False)
        else:
            logger.info("ignoring server command %r", command)

    def _on_credential_refused(self, exc: CredentialRefused) -> None:
        # Nobody will accept this job's result any more: stop it, and let
        # the pilot exit with the fatal error once the payload is down.
        logger.error("credential refused during job %d: %s", self._job.panda_id, exc)
        self.fatal_error = exc
        self.closed = True
        self._kill_switch.trigger(errors.GENERALERROR, f"credential refused: {exc}", report_final=False)


class HeartbeatThread(threading.Thread):
    """Sends `running` every `interval` seconds until stopped."""

    def __init__(self, reporter: JobReporter, interval: float, usage_probe: Callable[[], tuple[float, int] | None]):
        super().__init__(name="heartbeat", daemon=True)
        self._reporter = reporter
        self._interval = interval
        self._usage_probe = usage_probe
        # Not `_stop`: threading.Thread already uses that name internally.
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                extra = usage_fields(self._usage_probe())
                self._reporter.send_state("running", extra, abort=self._stopping)
            except Exception:  # a dead heartbeat thread would go unnoticed
                logger.exception("heartbeat failed")

    def stop(self, timeout: float) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join(timeout)

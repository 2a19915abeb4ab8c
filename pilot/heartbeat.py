"""updateJob for one job: state changes, periodic heartbeats, server commands.

One JobReporter per job serialises every updateJob of that job behind a
lock, so a heartbeat can never reach the server after the final update.

Besides the kill, an answer may put the job in debug mode (`command=debug`,
repeated by the server while it is on: heartbeat every --debug-heartbeat
seconds with the payload's stdout tail in `stdout`), carry peek requests
(`peek`: answered at once, in `peekAnswers` of an extra heartbeat) and ask
for heartbeats at least every `peekInterval` seconds while someone looks at
the job (docs/pilot-protocol.md).
"""

import json
import logging
import threading
from collections.abc import Callable

from pilot import errors
from pilot.client import SC_SUCCESS, ClientError, CredentialRefused, PandaClient, error_dialog
from pilot.jobspec import JobSpec
from pilot.outcome import utc_now
from pilot.payload import KillSwitch
from pilot.peek import Peeker

logger = logging.getLogger(__name__)

KILL_COMMAND = "tobekilled"
ALREADY_DONE_COMMAND = "alreadydone"
DEBUG_COMMAND = "debug"
DEBUG_OFF_COMMAND = "debugoff"
MAX_PEEKS = 10  # the server keeps at most one pending request per kind


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


def _positive_number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _peek_requests(value) -> dict[int, str]:
    """The answer's `peek`: [{"id": 7, "kind": "tail"}, ...] (a JSON string in URL-encoded answers)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    if not isinstance(value, list):
        return {}
    requests = {}
    for item in value[:MAX_PEEKS]:
        if isinstance(item, dict) and isinstance(item.get("id"), int) and isinstance(item.get("kind"), str):
            requests[item["id"]] = item["kind"]
    return requests


class ServerControl:
    """What the server's latest answer asks of the running job besides stopping it."""

    def __init__(self):
        self._lock = threading.Lock()
        self.debug = False
        self.poll_interval: float | None = None  # `peekInterval`: someone is looking at the job
        self._peeks: dict[int, str] = {}
        self._answer_now = False

    def update(self, answer: dict, commands: list[str]) -> None:
        """Apply a successful answer. Debug mode holds while the server repeats `debug`."""
        with self._lock:
            debug = DEBUG_COMMAND in commands and DEBUG_OFF_COMMAND not in commands
            if debug != self.debug:
                logger.info("server turned debug mode %s", "on" if debug else "off")
            self.debug = debug
            self.poll_interval = _positive_number(answer.get("peekInterval"))
            self._peeks = _peek_requests(answer.get("peek"))
            self._answer_now = bool(self._peeks)

    def answer_now(self) -> bool:
        with self._lock:
            return self._answer_now

    def take_peeks(self) -> dict[int, str]:
        """The pending requests to answer in the next heartbeat. They stay pending until an answer
        no longer lists them, so a heartbeat that does not get through is answered again."""
        with self._lock:
            self._answer_now = False
            return dict(self._peeks)


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
        self.control = ServerControl()

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
        commands = parse_commands(answer.get("command"))
        if answer.get("StatusCode") != SC_SUCCESS:
            logger.warning(
                "updateJob %s answered StatusCode %s: %s", state, answer.get("StatusCode"), error_dialog(answer)
            )
        else:
            self.control.update(answer, commands)
        for command in commands:
            self._apply_command(command)

    def _apply_command(self, command: str) -> None:
        if command == KILL_COMMAND:
            logger.warning("server asks to kill job %d", self._job.panda_id)
            self._kill_switch.trigger(errors.PANDAKILL, errors.MESSAGES[errors.PANDAKILL])
        elif command in (DEBUG_COMMAND, DEBUG_OFF_COMMAND):
            pass  # ServerControl.update
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
    """Sends `state` (`running`, or `starting` during stage-in) every `interval` seconds until stopped
    (more often when the server asks)."""

    def __init__(
        self,
        reporter: JobReporter,
        interval: float,
        usage_probe: Callable[[], tuple[float, int] | None],
        peeker: Peeker | None = None,
        debug_interval: float | None = None,
        state: str = "running",
    ):
        super().__init__(name="heartbeat", daemon=True)
        self._state = state
        self._reporter = reporter
        self._interval = interval
        self._usage_probe = usage_probe
        self._peeker = peeker
        self._debug_interval = debug_interval
        # Not `_stop`: threading.Thread already uses that name internally.
        self._stopping = threading.Event()

    def next_wait(self) -> float:
        """Seconds until the next heartbeat: none when peeks wait for their answers."""
        control = self._reporter.control
        if self._peeker is not None and control.answer_now():
            return 0.0
        waits = [self._interval]
        if control.debug and self._debug_interval:
            waits.append(self._debug_interval)
        if control.poll_interval:
            waits.append(control.poll_interval)
        return min(waits)

    def run(self) -> None:
        while not self._stopping.wait(self.next_wait()):
            try:
                extra = usage_fields(self._usage_probe())
                extra.update(self.control_fields())
                self._reporter.send_state(self._state, extra, abort=self._stopping)
            except Exception:  # a dead heartbeat thread would go unnoticed
                logger.exception("heartbeat failed")

    def control_fields(self) -> dict:
        """peekAnswers for the pending peeks, and the stdout tail in debug mode."""
        if self._peeker is None:
            return {}
        control = self._reporter.control
        fields = {}
        peeks = control.take_peeks()
        if peeks:
            logger.info("answering peek(s) %s", ", ".join(f"{pk}:{kind}" for pk, kind in sorted(peeks.items())))
            fields["peekAnswers"] = json.dumps({str(pk): self._peeker.answer(kind) for pk, kind in peeks.items()})
        if control.debug:
            fields["stdout"] = self._peeker.stdout_tail()
        return fields

    def stop(self, timeout: float) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join(timeout)

"""Run the payload in its own process group, wait for it, kill it on request.

The payload is arbitrary user code: it gets a session of its own so that a
kill reaches everything it started, and its stdout/stderr go to files in the
work directory (they end up in the log tarball).
"""

import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from pilot import errors
from pilot.errors import PilotFailure
from pilot.procstats import process_group_usage

logger = logging.getLogger(__name__)

STDOUT_NAME = "payload.stdout"
STDERR_NAME = "payload.stderr"
# Never hand the pilot's credential to user code.
HIDDEN_ENVIRONMENT = ("PANDA_PILOT_TOKEN",)


class KillSwitch:
    """A request to stop the payload, with the error to report for it.

    The first request wins: a server kill followed by a SIGTERM to the pilot
    is still reported as a server kill.
    """

    def __init__(self):
        self._event = threading.Event()
        # Re-entrant: the pilot's signal handler may trigger while the main
        # thread is inside trigger() already.
        self._lock = threading.RLock()
        self.code: int | None = None
        self.diag = ""
        self.report_final = True

    def trigger(self, code: int, diag: str, report_final: bool = True) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self.code, self.diag, self.report_final = code, diag, report_final
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)


@dataclass
class PayloadResult:
    exit_code: int  # as subprocess reports it: negative = killed by that signal
    cpu_seconds: float
    max_rss_kb: int
    start_time: datetime
    end_time: datetime
    killed_by_pilot: bool = False

    @property
    def term_signal(self) -> int | None:
        return -self.exit_code if self.exit_code < 0 else None

    @property
    def shell_exit_code(self) -> int:
        """The exit code a shell would show: 128+N for death by signal N."""
        return 128 + self.term_signal if self.term_signal else self.exit_code


def payload_environment(extra: dict[str, str]) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k not in HIDDEN_ENVIRONMENT}
    environment.update(extra)
    return environment


def start_payload(command: list[str], workdir: str, environment: dict[str, str]) -> "RunningPayload":
    """Start `command` in `workdir`; PilotFailure if it cannot be executed."""
    logger.info("starting payload: %s", command)
    with (
        open(os.path.join(workdir, STDOUT_NAME), "wb") as stdout,
        open(os.path.join(workdir, STDERR_NAME), "wb") as stderr,
    ):
        try:
            process = subprocess.Popen(
                command,
                cwd=workdir,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise PilotFailure(errors.TRANSFORMNOTFOUND, f"cannot execute {command[0]!r}: {exc.strerror}") from exc
        except OSError as exc:
            raise PilotFailure(errors.PAYLOADEXECUTIONFAILURE, f"cannot execute {command[0]!r}: {exc}") from exc
    return RunningPayload(process)


class RunningPayload:
    """A started payload. Use wait(); kill() is for abandoning it early."""

    def __init__(self, process: subprocess.Popen):
        self._process = process
        self.pid = process.pid
        self.start_time = datetime.now(UTC)
        self._result: PayloadResult | None = None

    def usage_so_far(self) -> tuple[float, int] | None:
        return process_group_usage(self.pid)

    def wait(self, kill_switch: KillSwitch, grace: float, poll_interval: float = 0.2) -> PayloadResult:
        """Wait for the payload to end, killing it if `kill_switch` fires."""
        killed = False
        while not self._leader_exited():
            if kill_switch.wait(poll_interval):
                logger.warning("killing payload (pid %d): %s", self.pid, kill_switch.diag)
                self._terminate_group(grace)
                killed = True
                break
        return self._reap(killed)

    def kill(self, grace: float) -> PayloadResult:
        if self._result is None:
            self._terminate_group(grace)
            self._reap(True)
        return self._result

    def _leader_exited(self) -> bool:
        # WNOWAIT leaves the exited leader a zombie: its pid, which is also
        # the process group id, cannot be reused while we still signal it.
        info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        return info is not None

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            pass  # the whole group is gone already

    def _terminate_group(self, grace: float) -> None:
        """SIGTERM the group; SIGKILL it if the leader outlives `grace`."""
        self._signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and not self._leader_exited():
            time.sleep(0.05)
        if not self._leader_exited():
            logger.warning("payload ignored SIGTERM for %.1f s, sending SIGKILL", grace)
        self._signal_group(signal.SIGKILL)
        os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)

    def _reap(self, killed: bool) -> PayloadResult:
        # Whatever the payload left running in its group (background jobs)
        # would keep writing into a work directory we are about to remove.
        self._signal_group(signal.SIGKILL)
        _, status, usage = os.wait4(self.pid, 0)
        exit_code = os.waitstatus_to_exitcode(status)
        self._process.returncode = exit_code  # so Popen does not wait again
        self._result = PayloadResult(
            exit_code=exit_code,
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            max_rss_kb=usage.ru_maxrss,  # kB on Linux
            start_time=self.start_time,
            end_time=datetime.now(UTC),
            killed_by_pilot=killed,
        )
        logger.info(
            "payload ended: exit code %d, cpu %.1f s, maxRSS %d kB",
            exit_code,
            self._result.cpu_seconds,
            self._result.max_rss_kb,
        )
        return self._result


def tail_lines(path: str, max_lines: int, max_bytes: int = 64 * 1024) -> list[str]:
    """Last lines of a text file (only its last `max_bytes` are read)."""
    try:
        with open(path, "rb") as source:
            source.seek(0, os.SEEK_END)
            source.seek(max(0, source.tell() - max_bytes))
            data = source.read()
    except OSError:
        return []
    return data.decode("utf-8", "replace").splitlines()[-max_lines:]


def last_stderr_line(workdir: str) -> str:
    lines = [line for line in tail_lines(os.path.join(workdir, STDERR_NAME), 50) if line.strip()]
    return lines[-1].strip() if lines else ""


def combined_output_tail(workdir: str, max_lines: int = 200) -> str:
    """The `pilotLog` field: the end of stdout, then the end of stderr."""
    if not any(os.path.exists(os.path.join(workdir, name)) for name in (STDOUT_NAME, STDERR_NAME)):
        return ""  # the payload never started
    stderr = tail_lines(os.path.join(workdir, STDERR_NAME), max_lines)
    # stderr is guaranteed half the lines; stdout may use whatever it leaves.
    stdout_budget = max_lines - min(max_lines // 2, len(stderr))
    stdout = tail_lines(os.path.join(workdir, STDOUT_NAME), stdout_budget)
    stderr_budget = max_lines - len(stdout)
    stderr = stderr[-stderr_budget:] if stderr_budget else []
    parts = [f"==> {STDOUT_NAME} <=="] + stdout + [f"==> {STDERR_NAME} <=="] + stderr
    return "\n".join(parts)

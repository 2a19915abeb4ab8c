"""Submission plugins: how a factory starts pilots and learns what became of them.

Every plugin answers three calls:
  submit(spec)          -> the batch id of the new pilot (raises PluginError when it failed)
  status({batch_id: pilot_id}) -> {batch_id: BatchState} for the pilots the batch system
                           still knows; a batch id missing from the answer is gone from it
  cancel(batch_id, pilot_id)  (raises PluginError)

Batch plugins (sites/factory/batch.py) run the batch system's command-line tools through
an injectable `runner`, so their commands and output parsing are tested against recorded
outputs without the tools installed. LocalPlugin starts `python -m pilot` on this host.
"""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

QUEUED, RUNNING, HELD, ENDED = "queued", "running", "held", "ended"
COMMAND_TIMEOUT_S = 60
OUTPUT_SHOWN = 300  # characters of a failing command's output kept in the pilot's exit reason


class PluginError(Exception):
    """A submit, status or cancel call failed; the message says which command and why."""


@dataclass(frozen=True)
class PilotSpec:
    """One pilot to start."""

    pilot_id: str
    site: str
    factory: str
    server: str
    args: tuple[str, ...] = ()  # pilot options after --server/--site/--pilot-id
    token: str | None = field(default=None, repr=False)  # passed in the environment, never in a file

    def pilot_arguments(self):
        return ["--server", self.server, "--site", self.site, "--pilot-id", self.pilot_id, *self.args]

    def environment(self):
        """What the pilot's environment adds: its identity for our pilot and for PanDA's pilot3
        (HARVESTER_ID / HARVESTER_WORKER_ID make pilot3 call updateWorkerPilotStatus; GTAG is what
        pilot3 puts first in the pilotID of its updateJob calls, which link its jobs to the pilot)."""
        return {"PANDA_PILOT_ID": self.pilot_id, "HARVESTER_ID": self.factory, "HARVESTER_WORKER_ID": self.pilot_id,
                "GTAG": self.pilot_id}  # fmt: skip


@dataclass(frozen=True)
class BatchState:
    state: str  # QUEUED, RUNNING, HELD or ENDED
    exit_code: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str


def run_command(argv, *, env=None, timeout=COMMAND_TIMEOUT_S):
    """Run a batch command; PluginError when it cannot run at all (missing binary, timeout)."""
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise PluginError(f"{argv[0]}: command not found") from None
    except subprocess.TimeoutExpired:
        raise PluginError(f"{argv[0]}: no answer within {timeout} s") from None
    except OSError as error:
        raise PluginError(f"{argv[0]}: {error}") from None
    return Completed(done.returncode, done.stdout, done.stderr)


def command_failed(argv, completed):
    """The PluginError for a command that exited non-zero, with the tail of what it said."""
    said = " ".join(line.strip() for line in (completed.stderr or completed.stdout).splitlines() if line.strip())
    said = said[-OUTPUT_SHOWN:]  # one line: it becomes the pilot's exit reason
    return PluginError(f"{argv[0]} exited with {completed.returncode}: {said or 'no output'}")


class LocalPlugin:
    """Pilots as processes on this host: `python -m pilot ...`, each in its own session with its own log.

    The batch id is the pid. Processes outlive a factory restart (they are detached); a restarted
    factory recognises its pilots by the pilot id on their command line (/proc/<pid>/cmdline),
    so a recycled pid is never mistaken for a pilot."""

    name = "local"

    def __init__(self, *, workdir, python=sys.executable, popen=subprocess.Popen):
        self.workdir = Path(workdir)
        self.python = python
        self.popen = popen
        self.children = {}  # pid -> Popen of the pilots this process started (polled, so never zombies)

    def submit(self, spec):
        site_dir = self.workdir / "sites" / spec.site
        log_dir = self.workdir / "logs" / spec.site
        site_dir.mkdir(parents=True, exist_ok=True)
        log_dir.mkdir(parents=True, exist_ok=True)
        args = spec.pilot_arguments()
        if "--workdir" not in args:
            args += ["--workdir", str(site_dir)]
        env = {**os.environ, **spec.environment(), "PYTHONPATH": str(settings.BASE_DIR)}
        env.pop("PANDA_PILOT_TOKEN", None)
        if spec.token:
            env["PANDA_PILOT_TOKEN"] = spec.token
        try:
            with open(log_dir / f"pilot-{spec.pilot_id}.log", "ab") as log:
                child = self.popen([self.python, "-m", "pilot", *args], cwd=site_dir, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        except OSError as error:
            raise PluginError(f"cannot start {self.python}: {error}") from None
        self.children[child.pid] = child
        return str(child.pid)

    def status(self, jobs):
        states = {}
        for batch_id, pilot_id in jobs.items():
            state = self._state(batch_id, pilot_id)
            if state is not None:
                states[batch_id] = state
        return states

    def _state(self, batch_id, pilot_id):
        if not batch_id.isdigit():
            return None
        child = self.children.get(int(batch_id))
        if child is not None:
            code = child.poll()
            if code is None:
                return BatchState(RUNNING)
            del self.children[int(batch_id)]
            return BatchState(ENDED, exit_code=code, detail=_exit_detail(code))
        return BatchState(RUNNING) if _is_our_process(int(batch_id), pilot_id) else None

    def cancel(self, batch_id, pilot_id):
        pid = int(batch_id) if batch_id.isdigit() else 0
        if pid and (pid in self.children or _is_our_process(pid, pilot_id)):
            try:
                os.kill(pid, signal.SIGTERM)  # the pilot reports its job and exits (pilot/loop.py)
            except ProcessLookupError:
                pass

    def stop_all(self, grace=10.0):
        """Stop every pilot this process started (the demo stops its pilots with the factory): SIGTERM, so
        they report their jobs, then SIGKILL after `grace` seconds (their next pilot recovers the jobs)."""
        live = [child for child in self.children.values() if child.poll() is None]
        for child in live:
            child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in live:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def _exit_detail(code):
    return f"killed by signal {-code}" if code < 0 else f"exited with {code}"


def _is_our_process(pid, pilot_id):
    """Whether `pid` is alive and is the pilot `pilot_id` (its id is on its command line)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (not Linux): trust that the pid is alive
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    return pilot_id.encode() in cmdline


def make_plugin(name, *, workdir, runner=run_command, **options):
    """The plugin called `name`, configured from the factory's options."""
    from .batch import CondorPlugin, PBSPlugin, SlurmPlugin

    if name == LocalPlugin.name:
        return LocalPlugin(workdir=workdir)
    classes = {cls.name: cls for cls in (SlurmPlugin, PBSPlugin, CondorPlugin)}
    if name not in classes:
        raise PluginError(f"unknown plugin {name!r}; choose local, slurm, pbs or condor")
    return classes[name](workdir=workdir, runner=runner, **options)


PLUGIN_NAMES = ("local", "slurm", "pbs", "condor")

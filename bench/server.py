"""A gunicorn serving the project with bench.settings, for the duration of a benchmark."""

import os
import signal
import socket
import subprocess
import time

import requests

from .env import ROOT

GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Gunicorn:
    def __init__(self, workers, log_path):
        self.workers = workers
        self.log_path = log_path
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self, timeout=60):
        command = [
            str(GUNICORN), "pandamon.wsgi", "--chdir", str(ROOT),
            "--workers", str(self.workers), "--worker-class", "sync",
            "--bind", f"127.0.0.1:{self.port}", "--backlog", "2048", "--timeout", "120",
            "--error-logfile", str(self.log_path), "--log-level", "warning",
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            # Own session: Ctrl-C reaches only this script, which then stops gunicorn cleanly.
            self.process = subprocess.Popen(
                command, env=os.environ.copy(), stdout=log, stderr=log, start_new_session=True
            )
        self._wait_until_up(timeout)
        return self

    def _wait_until_up(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}; see {self.log_path}")
            try:
                # GET on the POST-only bare endpoint: any answer (405) means Django is loaded.
                requests.get(self.url + "/bench/bare-getjob", timeout=5)
                return
            except requests.ConnectionError:
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer within {timeout} s; see {self.log_path}")

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # graceful: the master stops its workers
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    @property
    def pid(self):
        return self.process.pid

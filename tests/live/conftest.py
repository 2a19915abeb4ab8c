"""Real server processes (gunicorn, a Celery worker) against the test database."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import connection

ROOT = Path(settings.BASE_DIR)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url():
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def is_postgres():
    return connection.vendor == "postgresql"


@pytest.fixture
def server_env(transactional_db, tmp_path):
    """Environment for server subprocesses: the test database and a private var/ and broker."""
    var = tmp_path / "var"
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="pandamon.settings",
        DJANGO_SECRET_KEY="live-test-secret",
        DJANGO_DEBUG="0",
        DATABASE_URL=database_url(),
        PANDAMON_VAR_DIR=str(var),
        CELERY_BROKER_URL="filesystem://",
        CELERY_TASK_ALWAYS_EAGER="0",
        PANDA_PILOT_AUTH_CACHE_SECONDS="5",
        # Tests read the pilot counters while the server still runs: write them at once.
        PANDA_PILOT_CONTACT_FLUSH_SECONDS="0",
    )
    return env


class LiveProcess:
    def __init__(self, name, argv, env, log_dir):
        self.log_path = Path(log_dir) / f"{name}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def output(self):
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def live_server_url(server_env, tmp_path):
    """gunicorn serving the project on a free port (4 sync workers)."""
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "pandamon.wsgi", "--bind", f"127.0.0.1:{port}",
            "--workers", "4", "--timeout", "120"]  # fmt: skip
    server = LiveProcess("gunicorn", argv, server_env, tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url + "/api/v1/sites/?limit=1", server)
        yield url
    finally:
        server.stop()


def _wait_for(url, server, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"gunicorn exited:\n{server.output()[-3000:]}")
        try:
            if requests.get(url, timeout=10).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.3)
    pytest.fail(f"gunicorn did not answer within {timeout} s:\n{server.output()[-3000:]}")


@pytest.fixture
def celery_worker(server_env, tmp_path):
    """A real Celery worker consuming the same (filesystem) broker as the live server."""
    argv = [sys.executable, "-m", "celery", "-A", "pandamon", "worker", "--concurrency", "2", "--loglevel", "INFO"]
    worker = LiveProcess("celery", argv, server_env, tmp_path)
    yield worker
    worker.stop()


@pytest.fixture
def signing_key(server_env, tmp_path):
    """The live server signs jobs with a fresh key (docs/job-signing.md); returns its private key file.
    Request it before live_server_url, which starts gunicorn with server_env."""
    from jobs import signing

    path = tmp_path / "job-signing-key.pem"
    signing.write_new_key(path)
    server_env["PANDA_SIGNING_KEY"] = str(path)
    return path

"""A transfer agent killed with SIGKILL in the middle of copying loses nothing and finishes after a restart.

The agent is a real `manage.py transfer_agent` process on the test database; BNL's
storage is served over HTTP by a throttled server so the copies are slow enough to be
caught in flight.
"""

import os
import signal
import sys
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from datasets.choices import SubscriptionState, TransferState
from datasets.models import DatasetReplica, FileReplica, Subscription, TransferRequest
from datasets.services import subscriptions
from datasets.services.replicas import deterministic_pfn
from tests.dataflow.conftest import Grid

from .conftest import LiveProcess, is_postgres

NAME = "mc08.105200.T1_McAtNlo_Jimmy.evgen.EVNT.e357"
N_FILES, SIZE = 6, 64 * 1024


class SlowHandler(SimpleHTTPRequestHandler):
    """Serves the storage directory, a small chunk at a time while `server.slow` is set."""

    def log_message(self, *args):
        pass

    def copyfile(self, source, outputfile):
        while chunk := source.read(4096):
            outputfile.write(chunk)
            if self.server.slow.is_set():
                time.sleep(0.05)


@pytest.fixture
def slow_door(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SlowHandler, directory=str(tmp_path / "BNL")))
    server.slow = threading.Event()
    server.slow.set()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def start_agent(server_env, tmp_path, name, *extra):
    env = {**server_env, "PANDA_TRANSFER_LEASE_SECONDS": "3", "PANDA_TRANSFER_RETRY_SECONDS": "0"}
    argv = [sys.executable, "manage.py", "transfer_agent", "--batch", str(N_FILES), "--idle-sleep", "0.2",
            "--name", name, *extra]  # fmt: skip
    return LiveProcess(name, argv, env, tmp_path)


def wait_for(condition, timeout, process=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process is not None and process.process.poll() is not None and not condition():
            pytest.fail(f"agent exited:\n{process.output()[-3000:]}")
        time.sleep(0.1)
    pytest.fail("timed out" + (f"; agent log:\n{process.output()[-3000:]}" if process else ""))


def test_a_killed_agent_loses_nothing_and_a_restarted_one_finishes(server_env, tmp_path, slow_door):
    if not is_postgres():
        pytest.skip("the agent's claims need PostgreSQL row locking (SKIP LOCKED)")
    grid = Grid(tmp_path)
    files = {f"EVNT._{i:05d}.pool.root": os.urandom(SIZE) for i in range(N_FILES)}
    grid.dataset(NAME, grid.bnl, files)
    grid.bnl.storage_http_url = f"http://127.0.0.1:{slow_door.server_port}"
    grid.bnl.save()
    grid.mwt2.transfer_tools = "http"  # through the slow door only
    grid.mwt2.save()
    subscriptions.create_subscription(user=grid.operator, name=NAME, site_name="MWT2")

    first = start_agent(server_env, tmp_path, "agent-1")
    in_flight = TransferRequest.objects.filter(state=TransferState.SUBMITTED)
    wait_for(lambda: in_flight.count() == N_FILES and any(Path(grid.mwt2.storage_endpoint).rglob("*.part")), 60,
             first)  # fmt: skip
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait()
    first.stop()
    assert not FileReplica.objects.filter(site=grid.mwt2).exists()  # nothing was registered half-way
    assert in_flight.count() == N_FILES  # the killed agent's claims are still recorded

    slow_door.slow.clear()
    second = start_agent(server_env, tmp_path, "agent-2", "--until-idle")
    try:
        second.process.wait(timeout=90)
    finally:
        second.stop()
    log = second.output()
    requests = TransferRequest.objects.filter(destination=grid.mwt2)
    assert [r.state for r in requests] == [TransferState.DONE] * N_FILES, log[-3000:]
    assert FileReplica.objects.filter(site=grid.mwt2).count() == N_FILES
    for lfn, data in files.items():
        assert Path(deterministic_pfn(grid.mwt2, lfn)).read_bytes() == data
    replica = DatasetReplica.objects.get(dataset__name=NAME, site=grid.mwt2)
    assert replica.files_present == N_FILES and replica.complete_at is not None
    assert Subscription.objects.get(site=grid.mwt2).state == SubscriptionState.DONE

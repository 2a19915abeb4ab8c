"""HTTP callbacks with retries, the storage consistency check and storage space reports."""

import json
import os
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from datasets.choices import CallbackState, SubscriptionState
from datasets.models import DatasetReplica, FileReplica, ReplicaCallback
from datasets.services import callbacks, consistency, replicas, subscriptions
from datasets.services.replicas import deterministic_pfn
from pandamon.errors import InvalidInput
from sites.models import StorageSpace
from sites.services import create_pilot_credential, measure_storage_space, record_storage_space

from .conftest import run_agents

pytestmark = pytest.mark.django_db
NAME = "data08.00091900.physics.RAW"


class Receiver(BaseHTTPRequestHandler):
    """Answers 503 to the first `failures` POSTs, then 200; keeps the bodies."""

    def log_message(self, *args):
        pass

    def do_POST(self):  # noqa: N802 - the http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append(body)
        status = 503 if len(self.server.bodies) <= self.server.failures else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.bodies, server.failures = [], 1
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def test_an_http_callback_fires_when_the_replica_completes_and_is_retried(grid, receiver):
    grid.dataset(NAME, grid.bnl, {"RAW._0001.data": b"r" * 100, "RAW._0002.data": b"s" * 100})
    url = f"http://127.0.0.1:{receiver.server_port}/hook"
    callback = callbacks.register_user_callback(user=grid.operator, name=NAME, site_name="FZK", url=url)
    assert callback.state == CallbackState.WAITING
    subscriptions.create_subscription(user=grid.operator, name=NAME, site_name="FZK")
    run_agents()
    callback.refresh_from_db()
    assert callback.state == CallbackState.DUE and callback.fired_at is not None

    assert callbacks.deliver_due_callbacks() == {"delivered": 0, "retrying": 1, "failed": 0}  # the 503
    callback.refresh_from_db()
    assert callback.attempts == 1 and "503" in callback.last_error and callback.next_attempt_at > timezone.now()
    assert callbacks.deliver_due_callbacks()["delivered"] == 0  # not before its retry time
    ReplicaCallback.objects.filter(pk=callback.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert callbacks.deliver_due_callbacks()["delivered"] == 1
    callback.refresh_from_db()
    assert callback.state == CallbackState.DONE and callback.delivered_at is not None
    body = receiver.bodies[-1]
    assert (body["event"], body["dataset"], body["site"], body["files"]) == ("replica_complete", NAME, "FZK", 2)


def test_a_callback_on_a_replica_already_complete_fires_at_once(grid, receiver):
    grid.dataset(NAME, grid.bnl, {"RAW._0001.data": b"r"})
    callback = callbacks.register_user_callback(
        user=grid.operator, name=NAME, site_name="BNL", url=f"http://127.0.0.1:{receiver.server_port}/"
    )
    assert callback.state == CallbackState.DUE


def test_callback_urls_must_be_http(grid):
    grid.dataset(NAME, grid.bnl, {"RAW._0001.data": b"r"})
    with pytest.raises(InvalidInput, match="http"):
        callbacks.register_user_callback(user=grid.operator, name=NAME, site_name="BNL", url="file:///etc/passwd")
    assert not ReplicaCallback.objects.exists()


def test_the_consistency_check_finds_a_dark_file_and_a_lost_replica(grid):
    files = {"RAW._0001.data": b"a" * 10, "RAW._0002.data": b"b" * 10, "RAW._0003.data": b"c" * 10}
    grid.dataset(NAME, grid.fzk, files)
    subscription = subscriptions.create_subscription(user=grid.operator, name=NAME, site_name="FZK")
    subscriptions.evaluate_subscriptions()
    dark = grid.write(grid.fzk, "nobody.registered.me", b"dark")
    an_hour_ago = time.time() - 7200
    os.utime(dark, (an_hour_ago, an_hour_ago))
    fresh = grid.write(grid.fzk, "just.arriving", b"new")  # young: maybe a copy in flight, not reported
    Path(deterministic_pfn(grid.fzk, "RAW._0002.data")).unlink()

    check = consistency.check_site(grid.fzk)
    assert (check.n_dark, check.n_lost, check.files_on_storage, check.replicas_in_catalog) == (1, 1, 4, 3)
    assert check.dark == [str(dark)] and check.lost == ["RAW._0002.data"] and fresh not in check.dark
    assert FileReplica.objects.filter(site=grid.fzk).count() == 3  # a report changes nothing

    fixed = consistency.check_site(grid.fzk, fix=True)
    assert fixed.fixed and not FileReplica.objects.filter(site=grid.fzk, file__lfn="RAW._0002.data").exists()
    replica = DatasetReplica.objects.get(dataset__name=NAME, site=grid.fzk)
    assert (replica.files_present, replica.complete_at) == (2, None)
    subscription.refresh_from_db()
    assert subscription.needs_evaluation and subscription.state == SubscriptionState.ACTIVE


def test_the_consistency_check_of_http_storage_says_it_cannot(grid):
    grid.bnl.storage_endpoint = "https://se.example.org/bnl"
    check = consistency.check_site(grid.bnl)
    assert "not a local directory" in check.error


def test_a_pilot_reports_its_sites_storage_space(grid):
    _, token = create_pilot_credential(name="mwt2-pilots", sites=[grid.mwt2])
    body = {"used_bytes": 700, "free_bytes": 300, "total_bytes": 1000, "node": "wn7"}
    answer = Client().post("/api/v1/sites/MWT2/space", json.dumps(body), content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {token}")  # fmt: skip
    assert answer.status_code == 200, answer.content
    space = StorageSpace.objects.get(site=grid.mwt2)
    assert (space.used_bytes, space.free_bytes, space.total_bytes, space.reported_by) == (700, 300, 1000, "pilot@wn7")


@pytest.mark.parametrize(
    ("site", "token", "body", "status", "message"),
    [
        ("MWT2", None, {"used_bytes": 1, "free_bytes": 1, "total_bytes": 2}, 403, "needs a pilot credential"),
        ("BNL", "good", {"used_bytes": 1, "free_bytes": 1, "total_bytes": 2}, 403, "not bound to site"),
        ("MWT2", "good", {"used_bytes": -1, "free_bytes": 1, "total_bytes": 2}, 400, "used_bytes"),
        ("MWT2", "good", {"used_bytes": "a lot", "free_bytes": 1, "total_bytes": 2}, 400, "used_bytes"),
        ("MWT2", "good", [1, 2], 400, "JSON object"),
        ("NOWHERE", "good", {}, 404, "unknown site"),
    ],
)
def test_bad_space_reports_are_refused_and_change_nothing(grid, site, token, body, status, message):
    _, good = create_pilot_credential(name="mwt2-pilots", sites=[grid.mwt2])
    headers = {"HTTP_AUTHORIZATION": f"Bearer {good}"} if token else {}
    answer = Client().post(f"/api/v1/sites/{site}/space", json.dumps(body), content_type="application/json",
                           **headers)  # fmt: skip
    assert answer.status_code == status
    assert message in answer.json()["detail"]
    assert not StorageSpace.objects.exists()


def test_the_storage_agent_measures_directory_storage(grid):
    assert measure_storage_space() == {"measured": 3}
    space = StorageSpace.objects.get(site=grid.bnl)
    assert space.total_bytes > 0 and space.reported_by == "storage agent"


def test_registering_a_replica_location_complete_fires_waiting_callbacks(grid, receiver):
    grid.dataset(NAME, grid.bnl, {"RAW._0001.data": b"r"})
    callback = callbacks.register_user_callback(
        user=grid.operator, name=NAME, site_name="FZK", url=f"http://127.0.0.1:{receiver.server_port}/"
    )
    grid.write(grid.fzk, "RAW._0001.data", b"r")
    replicas.register_dataset_location(user=grid.operator, name=NAME, site_name="FZK", complete=True)
    callback.refresh_from_db()
    assert callback.state == CallbackState.DUE


def test_the_site_page_and_api_show_the_storage_space(grid, client):
    record_storage_space(site=grid.bnl, used_bytes=6 * 10**12, free_bytes=4 * 10**12, total_bytes=10**13,
                         reported_by="pilot@wn1")  # fmt: skip
    page = client.get("/sites/BNL/")
    assert page.status_code == 200
    assert "3.6\xa0TB free of 9.1\xa0TB, reported by pilot@wn1" in page.content.decode()
    data = client.get("/sites/BNL/?json").json()
    assert data["storage_space"]["free_bytes"] == 4 * 10**12
    api = client.get("/api/v1/sites/BNL/").json()
    assert api["storage_space"]["total_bytes"] == 10**13
    assert client.get("/api/v1/sites/MWT2/").json()["storage_space"] is None


def test_the_site_and_home_pages_plot_the_transfer_and_storage_history(grid, client):
    from alarms.services.history import take_dataflow_snapshot

    grid.dataset(NAME, grid.bnl, {"RAW._0001.data": b"r" * 100})
    subscriptions.create_subscription(user=grid.operator, name=NAME, site_name="FZK")
    record_storage_space(site=grid.fzk, used_bytes=10**9, free_bytes=4 * 10**9, total_bytes=5 * 10**9,
                         reported_by="pilot@wn1")  # fmt: skip
    take_dataflow_snapshot()
    run_agents()
    take_dataflow_snapshot()
    site_page = client.get("/sites/FZK/").content.decode()
    assert 'id="transfer-history-figure"' in site_page and 'id="storage-history-figure"' in site_page
    assert 'id="transfer-history-figure"' in client.get("/").content.decode()

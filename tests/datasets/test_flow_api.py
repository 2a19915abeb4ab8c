"""The data-flow REST API (docs/catalog-api.md, "The data flow"): subscriptions, transfers, channels,
callbacks and consistency checks, through real requests with token authentication."""

import os
import zlib
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from datasets.choices import SubscriptionState, TransferState
from datasets.models import ReplicaCallback, Subscription, TransferRequest
from datasets.services import catalog, containers, replicas
from datasets.services.replicas import deterministic_pfn
from datasets.services.subscriptions import evaluate_subscriptions
from datasets.services.transfers import transfer_batch

from ..factories import (
    CloudFactory,
    ConsistencyCheckFactory,
    SiteFactory,
    TransferChannelStatFactory,
    UserFactory,
    grant_role,
)

pytestmark = pytest.mark.django_db
MINE = "user.alice.flow1"
OFFICIAL = "mc11.105200.T1_McAtNlo.evgen.EVNT.e835"


def client_for(user=None):
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token.key}")
    return client


def contents(prefix, n):
    return {f"{prefix}._{i:05d}.pool.root": bytes([i]) * (100 + i) for i in range(1, n + 1)}


def specs(files):
    return [{"lfn": lfn, "fsize": len(data), "adler32": f"{zlib.adler32(data):08x}"} for lfn, data in files.items()]


@pytest.fixture
def people(db):
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    operator = grant_role(UserFactory(username="ddmop"), "data_operator")
    return {"alice": alice, "bob": bob, "operator": operator}


@pytest.fixture
def alice(people):
    return client_for(people["alice"])


@pytest.fixture
def bob(people):
    return client_for(people["bob"])


@pytest.fixture
def ops(people):
    return client_for(people["operator"])


@pytest.fixture
def sites(db, tmp_path, settings):
    """BNL holds the data (real files on directory storage); MWT2 and CERN receive; NOSE has no storage."""
    settings.PANDA = {**settings.PANDA, "TRANSFER_RETRY_SECONDS": 0, "TRANSFER_TIMEOUT_SECONDS": 10}
    us = CloudFactory(name="US")
    made = {}
    for name in ("BNL", "MWT2", "CERN"):
        (tmp_path / name).mkdir()
        made[name] = SiteFactory(name=name, cloud=us, storage_endpoint=str(tmp_path / name))
    made["NOSE"] = SiteFactory(name="NOSE", cloud=us)
    return made


def held_at(site, user, name, files):
    """Register `name` with `files` and store them at `site` (real bytes at their deterministic places)."""
    catalog.register_new_dataset(user=user, name=name, files=specs(files))
    for lfn, data in files.items():
        path = deterministic_pfn(site, lfn)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as out:
            out.write(data)
    replicas.register_file_replicas(user=user, site_name=site.name, replicas=[{"lfn": lfn} for lfn in files])


@pytest.fixture
def mine(people, sites):
    files = contents("flow1", 3)
    held_at(sites["BNL"], people["alice"], MINE, files)
    return files


def subscribe(client, dataset=MINE, site="MWT2", **extra):
    return client.post("/api/v1/subscriptions/", {"dataset": dataset, "site": site, **extra}, format="json")


def results(client, url):
    answer = client.get(url)
    assert answer.status_code == 200, answer.content
    return answer.json()["results"]


# -- subscriptions ------------------------------------------------------------------------------------


def test_a_user_subscribes_their_dataset_and_the_agent_queues_one_transfer_per_missing_file(alice, mine):
    answer = subscribe(alice, priority=4)
    assert answer.status_code == 201, answer.content
    made = answer.json()
    assert (made["dataset"], made["dataset_kind"], made["site"]) == (MINE, "dataset", "MWT2")
    assert made["owner_name"] == "alice"
    assert (made["state"], made["priority"], made["activity"], made["reason"]) == ("active", 4, "user", "")
    assert made["state_text"].startswith("active: ")
    assert made["progress"] == {"files_wanted": 3, "files_present": 0, "bytes_wanted": sum(map(len, mine.values())),
                                "bytes_present": 0, "complete": False}  # fmt: skip
    assert not TransferRequest.objects.exists()

    assert evaluate_subscriptions()["missing"] == 3
    anonymous = APIClient()  # the monitor is public: reads need no token
    queued = results(anonymous, "/api/v1/transfers/?destination=MWT2")
    assert sorted(t["lfn"] for t in queued) == sorted(mine)
    assert {(t["state"], t["priority"], t["activity"], t["source"]) for t in queued} == {("queued", 4, "user", None)}
    assert {t["fsize"] for t in queued} == {len(data) for data in mine.values()}
    detail = anonymous.get(f"/api/v1/subscriptions/{made['id']}/").json()
    assert detail["transfers"] == {"queued": 3, "submitted": 0, "done": 0, "failed": 0}
    assert detail["evaluated_at"] is not None
    one = anonymous.get(f"/api/v1/transfers/{queued[0]['id']}/").json()
    assert one["lfn"] == queued[0]["lfn"] and one["destination"] == "MWT2"


def test_the_transfer_agent_moves_the_files_and_progress_channels_and_state_follow(alice, mine, sites):
    made = subscribe(alice).json()
    evaluate_subscriptions()
    assert transfer_batch(agent="test")["done"] == 3
    evaluate_subscriptions()
    after = alice.get(f"/api/v1/subscriptions/{made['id']}/").json()
    assert after["state"] == "done" and after["done_at"] is not None
    assert after["progress"]["files_present"] == 3 and after["progress"]["complete"] is True
    done = results(alice, "/api/v1/transfers/?state=done")
    assert {(t["source"], t["destination"], t["tool"] != "") for t in done} == {("BNL", "MWT2", True)}
    [hour] = results(APIClient(), "/api/v1/transfer-channels/?source=BNL")
    assert (hour["destination"], hour["files_done"], hour["bytes_done"]) == ("MWT2", 3, sum(map(len, mine.values())))


def test_subscribing_someone_elses_dataset_is_refused_and_creates_nothing(bob, mine):
    answer = subscribe(bob)
    assert answer.status_code == 403
    assert "belongs to user 'alice'" in answer.json()["error"]
    assert not Subscription.objects.exists()


def test_writes_need_a_token(mine):
    assert subscribe(APIClient()).status_code in (401, 403)
    assert not Subscription.objects.exists()


@pytest.mark.parametrize(
    "dataset, site, message",
    [
        ("user.alice.nothing", "MWT2", "no dataset named user.alice.nothing"),
        (MINE, "NOWHERE", "unknown site 'NOWHERE'"),
    ],
)
def test_unknown_dataset_or_site_is_404(alice, mine, dataset, site, message):
    answer = subscribe(alice, dataset=dataset, site=site)
    assert answer.status_code == 404 and answer.json()["error"] == message


def test_subscribing_twice_is_a_conflict(alice, mine):
    assert subscribe(alice).status_code == 201
    again = subscribe(alice, priority=5)
    assert again.status_code == 409 and "MWT2 is already subscribed to" in again.json()["error"]
    assert Subscription.objects.get().priority == 3


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"priority": 0}, "priority: give an integer from 1 (lowest) to 5 (highest)"),
        ({"priority": 6}, "priority: give an integer from 1 (lowest) to 5 (highest)"),
        ({"priority": "high"}, "priority: give an integer from 1 (lowest) to 5 (highest)"),
        ({"priority": True}, "priority: give an integer from 1 (lowest) to 5 (highest)"),
        ({"priority": 2.5}, "priority: give an integer from 1 (lowest) to 5 (highest)"),
        ({"activity": "dispatch"}, "activity must be one of: user, production"),
        ({"site": "NOSE"}, "site NOSE has no storage endpoint"),
        ({"site": ""}, "site: This field may not be blank."),
    ],
)
def test_bad_input_is_400_with_a_message(alice, mine, extra, message):
    answer = subscribe(alice, **extra)
    assert answer.status_code == 400, answer.content
    assert message in answer.json()["error"]
    assert not Subscription.objects.exists()


def test_a_body_that_is_not_an_object_is_400(alice, mine):
    for body in ([MINE, "MWT2"], {"dataset": MINE}):
        answer = alice.post("/api/v1/subscriptions/", body, format="json")
        assert answer.status_code == 400 and answer.json()["error"].startswith("invalid input: ")


def test_the_owner_suspends_and_resumes_and_another_user_may_not(alice, bob, mine):
    pk = subscribe(alice).json()["id"]
    refused = bob.post(f"/api/v1/subscriptions/{pk}/suspend/", {"reason": "mine now"}, format="json")
    assert refused.status_code == 403 and "belongs to alice" in refused.json()["error"]
    assert bob.post(f"/api/v1/subscriptions/{pk}/resume/").status_code == 403
    assert Subscription.objects.get().state == SubscriptionState.ACTIVE

    suspended = alice.post(f"/api/v1/subscriptions/{pk}/suspend/", {"reason": "disk full"}, format="json")
    assert suspended.status_code == 200
    assert (suspended.json()["state"], suspended.json()["reason"]) == ("suspended", "suspended by alice: disk full")
    assert evaluate_subscriptions()["evaluated"] == 0  # the agent leaves it alone
    assert not TransferRequest.objects.exists()
    resumed = alice.post(f"/api/v1/subscriptions/{pk}/resume/")
    assert resumed.status_code == 200 and (resumed.json()["state"], resumed.json()["reason"]) == ("active", "")
    assert evaluate_subscriptions()["missing"] == 3


def test_a_data_operator_may_suspend_anyones_subscription(alice, ops, mine):
    pk = subscribe(alice).json()["id"]
    answer = ops.post(f"/api/v1/subscriptions/{pk}/suspend/", {}, format="json")
    assert answer.status_code == 200 and answer.json()["reason"] == "suspended by ddmop"
    assert ops.post(f"/api/v1/subscriptions/{pk}/resume/").json()["state"] == "active"


def test_unsubscribing_drops_the_queued_transfers(alice, bob, mine):
    pk = subscribe(alice).json()["id"]
    evaluate_subscriptions()
    assert TransferRequest.objects.filter(state=TransferState.QUEUED).count() == 3
    assert bob.delete(f"/api/v1/subscriptions/{pk}/").status_code == 403
    assert TransferRequest.objects.count() == 3
    answer = alice.delete(f"/api/v1/subscriptions/{pk}/")
    assert answer.status_code == 204 and not answer.content
    assert not Subscription.objects.exists()
    assert results(alice, "/api/v1/transfers/") == []
    assert alice.get(f"/api/v1/subscriptions/{pk}/").status_code == 404
    gone = alice.delete(f"/api/v1/subscriptions/{pk}/")
    assert gone.status_code == 404 and gone.json()["error"] == f"no subscription {pk}"
    assert alice.post(f"/api/v1/subscriptions/{pk}/suspend/").status_code == 404


def test_a_container_subscription_has_no_progress_of_its_own(people, ops, sites):
    held_at(sites["BNL"], people["operator"], OFFICIAL, contents("evnt", 2))
    catalog.register_new_dataset(user=people["operator"], name="mc11.all.EVNT", kind="container")
    containers.add_to_container(user=people["operator"], name="mc11.all.EVNT", members=[OFFICIAL])
    made = subscribe(ops, dataset="mc11.all.EVNT", site="CERN", activity="production").json()
    assert (made["dataset_kind"], made["activity"], made["progress"]) == ("container", "production", None)
    assert ops.get(f"/api/v1/subscriptions/{made['id']}/").json()["transfers"] is None
    assert evaluate_subscriptions()["missing"] == 2


def test_unsubscribing_a_dataset_keeps_the_transfers_a_container_subscription_of_the_site_still_wants(
    people, ops, sites
):
    held_at(sites["BNL"], people["operator"], OFFICIAL, contents("evnt", 2))
    catalog.register_new_dataset(user=people["operator"], name="mc11.all.EVNT", kind="container")
    containers.add_to_container(user=people["operator"], name="mc11.all.EVNT", members=[OFFICIAL])
    subscribe(ops, dataset="mc11.all.EVNT", site="CERN")
    direct = subscribe(ops, dataset=OFFICIAL, site="CERN").json()["id"]
    evaluate_subscriptions()
    assert TransferRequest.objects.filter(state=TransferState.QUEUED).count() == 2
    assert ops.delete(f"/api/v1/subscriptions/{direct}/").status_code == 204
    assert TransferRequest.objects.filter(state=TransferState.QUEUED).count() == 2


def test_modified_at_moves_when_the_subscription_changes(alice, mine):
    pk = subscribe(alice).json()["id"]
    long_ago = timezone.now() - timedelta(days=1)
    Subscription.objects.filter(pk=pk).update(created_at=long_ago, modified_at=long_ago)
    suspended = alice.post(f"/api/v1/subscriptions/{pk}/suspend/", {}, format="json").json()
    assert suspended["state"] == "suspended"
    assert Subscription.objects.get(pk=pk).modified_at > long_ago


def test_an_erased_dataset_is_not_copied_any_more(people, alice, mine):
    assert subscribe(alice).status_code == 201
    assert alice.delete(f"/api/v1/datasets/{MINE}/").status_code == 200
    evaluate_subscriptions()
    assert not TransferRequest.objects.exists()


# -- listing: the grammar and keyset pages ----------------------------------------------------------------


@pytest.fixture
def several(people, sites, alice, ops, mine):
    """alice's dataset at MWT2 and CERN; an official dataset at MWT2 and CERN (by the operator), one suspended."""
    held_at(sites["BNL"], people["operator"], OFFICIAL, contents("evnt", 2))
    made = [subscribe(alice, site="MWT2"), subscribe(alice, site="CERN"),
            subscribe(ops, dataset=OFFICIAL, site="MWT2", activity="production"),
            subscribe(ops, dataset=OFFICIAL, site="CERN", activity="production")]  # fmt: skip
    ids = [answer.json()["id"] for answer in made]
    ops.post(f"/api/v1/subscriptions/{ids[3]}/suspend/", {}, format="json")
    return ids


@pytest.mark.parametrize(
    "query, expected",
    [
        ("", [3, 2, 1, 0]),
        ("dataset=user.alice.*", [1, 0]),
        ("dataset=*EVNT*", [3, 2]),
        ("dataset=!user.*", [3, 2]),
        ("site=MWT2", [2, 0]),
        ("site=MW*|CE*", [3, 2, 1, 0]),
        ("state=suspended", [3]),
        ("state=!suspended&site=CERN", [1]),
        ("activity=production", [3, 2]),
        ("owner=ali*", [1, 0]),
        ("owner=ddmop&state=active", [2]),
    ],
)
def test_subscription_filters_use_the_grammar(several, query, expected):
    listed = results(APIClient(), f"/api/v1/subscriptions/?{query}")
    assert [s["id"] for s in listed] == [several[i] for i in expected]


@pytest.mark.parametrize(
    "url, message",
    [
        ("/api/v1/subscriptions/?colour=red", "unknown parameter colour"),
        ("/api/v1/transfers/?site=BNL", "unknown parameter site; this list filters on activity, dataset, destination"),
        ("/api/v1/transfer-channels/?state=done", "unknown parameter state"),
        ("/api/v1/subscriptions/?state=sleeping", "'sleeping' is not one of"),
        ("/api/v1/transfers/?state=lost", "'lost' is not one of"),
        ("/api/v1/subscriptions/?site=BNL%25", "is not a valid pattern"),
        ("/api/v1/transfers/?destination=BNL%25", "is not a valid pattern"),
        ("/api/v1/transfer-channels/?source=a%20b", "is not a valid pattern"),
        ("/api/v1/subscriptions/?dataset=a%20b", "is not a valid pattern"),
        ("/api/v1/transfers/?id=x", "is not an integer"),
        ("/api/v1/transfer-channels/?hours=0", "hours must be greater than 0"),
    ],
)
def test_bad_filters_are_400(url, message):
    answer = APIClient().get(url)
    assert answer.status_code == 400, answer.content
    assert message in answer.json()["error"]


def test_subscriptions_page_newest_first(several):
    page = APIClient().get("/api/v1/subscriptions/?limit=3").json()
    seen = [s["id"] for s in page["results"]]
    assert len(seen) == 3 and page["next"]
    seen += [s["id"] for s in APIClient().get(page["next"]).json()["results"]]
    assert seen == sorted(several, reverse=True)


def test_transfer_filters_and_pages(several, mine):
    evaluate_subscriptions()
    client = APIClient()
    everything = results(client, "/api/v1/transfers/?limit=1000")
    assert len(everything) == 3 * 2 + 2 * 1  # the suspended one queues nothing
    assert [t["id"] for t in everything] == sorted((t["id"] for t in everything), reverse=True)
    assert len(results(client, "/api/v1/transfers/?destination=CERN")) == 3
    assert len(results(client, "/api/v1/transfers/?destination=CERN&activity=production")) == 0
    assert len(results(client, "/api/v1/transfers/?lfn=evnt.*")) == 2
    assert len(results(client, "/api/v1/transfers/?lfn=*_00001.pool.root")) == 3
    assert len(results(client, f"/api/v1/transfers/?dataset={MINE}&destination=MWT2")) == 3
    assert len(results(client, "/api/v1/transfers/?state=!queued")) == 0
    page, seen = client.get("/api/v1/transfers/?limit=3").json(), []
    while True:
        seen += [t["id"] for t in page["results"]]
        if not page["next"]:
            break
        page = client.get(page["next"]).json()
    assert seen == [t["id"] for t in everything]


# -- channels -------------------------------------------------------------------------------------------------


def test_channel_hours_in_a_window_and_their_totals(sites):
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    bnl, mwt2, cern = sites["BNL"], sites["MWT2"], sites["CERN"]
    TransferChannelStatFactory(source=bnl, destination=mwt2, hour=now, files_done=10, bytes_done=1000, seconds=10)
    TransferChannelStatFactory(
        source=bnl, destination=mwt2, hour=now - timedelta(hours=3), files_done=5, bytes_done=500, seconds=2,
        files_failed=5, last_error="checksum mismatch",
    )  # fmt: skip
    TransferChannelStatFactory(source=bnl, destination=mwt2, hour=now - timedelta(hours=30), files_done=7)
    TransferChannelStatFactory(source=cern, destination=bnl, hour=now - timedelta(hours=1), files_done=1)
    client = APIClient()
    recent = results(client, "/api/v1/transfer-channels/")
    assert [(h["source"], h["destination"], h["files_done"]) for h in recent] == [
        ("BNL", "MWT2", 10), ("CERN", "BNL", 1), ("BNL", "MWT2", 5)
    ]  # fmt: skip
    assert recent[0]["bytes_per_second"] == 100.0
    assert len(results(client, "/api/v1/transfer-channels/?hours=48")) == 4
    assert len(results(client, "/api/v1/transfer-channels/?destination=MWT2&hours=2")) == 1

    summary = client.get("/api/v1/transfer-channels/summary/?source=BNL").json()
    assert summary["window"]["hours"] == 24
    [channel] = summary["results"]
    assert (channel["source"], channel["destination"], channel["files_done"], channel["files_failed"]) == (
        "BNL", "MWT2", 15, 5
    )  # fmt: skip
    assert (channel["bytes_done"], channel["hours"], channel["failure_fraction"]) == (1500, 2, 0.25)
    assert channel["bytes_per_second"] == 125.0 and channel["last_error"] == "checksum mismatch"
    every = client.get("/api/v1/transfer-channels/summary/?hours=48").json()["results"]
    assert [(c["source"], c["destination"], c["files_done"]) for c in every] == [
        ("BNL", "MWT2", 22),
        ("CERN", "BNL", 1),
    ]
    bad = client.get("/api/v1/transfer-channels/summary/?hours=x")
    assert bad.status_code == 400 and "hours must be a number" in bad.json()["error"]
    assert client.get("/api/v1/transfer-channels/summary/?state=done").status_code == 400


# -- callbacks ------------------------------------------------------------------------------------------------


def test_a_user_registers_a_callback_that_only_they_and_operators_see(alice, bob, ops, mine):
    answer = alice.post(
        "/api/v1/callbacks/", {"dataset": MINE, "site": "MWT2", "url": "https://example.org/hook"}, format="json"
    )
    assert answer.status_code == 201, answer.content
    made = answer.json()
    assert (made["dataset"], made["site"], made["kind"], made["state"]) == (MINE, "MWT2", "http", "waiting")
    assert (made["owner_name"], made["url"]) == ("alice", "https://example.org/hook")
    assert [c["id"] for c in results(alice, "/api/v1/callbacks/")] == [made["id"]]
    assert alice.get(f"/api/v1/callbacks/{made['id']}/").json()["url"] == "https://example.org/hook"
    assert results(bob, "/api/v1/callbacks/") == []
    assert bob.get(f"/api/v1/callbacks/{made['id']}/").status_code == 404
    assert [c["id"] for c in results(ops, "/api/v1/callbacks/?owner=alice&state=waiting")] == [made["id"]]
    assert results(ops, "/api/v1/callbacks/?state=done") == []
    assert APIClient().get("/api/v1/callbacks/").status_code in (401, 403)


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"dataset": MINE, "site": "MWT2", "url": "ftp://example.org/x"}, 400, "url: give an http:// or https:// URL"),
        ({"dataset": MINE, "site": "MWT2", "url": "https://x/" + "a" * 500}, 400, "at most 500 characters"),
        ({"dataset": MINE, "site": "MWT2"}, 400, "url: This field is required."),
        ({"dataset": "user.alice.none", "site": "MWT2", "url": "http://x/"}, 404, "no dataset named"),
        ({"dataset": MINE, "site": "NOWHERE", "url": "http://x/"}, 404, "unknown site 'NOWHERE'"),
    ],
)
def test_bad_callbacks_are_refused(alice, mine, body, status, message):
    answer = alice.post("/api/v1/callbacks/", body, format="json")
    assert answer.status_code == status and message in answer.json()["error"]
    assert not ReplicaCallback.objects.exists()


def test_registering_a_callback_needs_a_token(mine):
    body = {"dataset": MINE, "site": "MWT2", "url": "http://x/"}
    assert APIClient().post("/api/v1/callbacks/", body, format="json").status_code in (401, 403)


# -- consistency checks ---------------------------------------------------------------------------------------


def test_consistency_checks_are_for_data_operators(alice, ops, sites):
    ConsistencyCheckFactory(site=sites["BNL"], n_dark=2, dark=["/se/a", "/se/b"], files_on_storage=5)
    ConsistencyCheckFactory(site=sites["MWT2"], n_lost=1, lost=["x.root"])
    refused = alice.get("/api/v1/consistency-checks/")
    assert refused.status_code == 403 and "data_operator role" in refused.json()["error"]
    assert APIClient().get("/api/v1/consistency-checks/").status_code in (401, 403)
    listed = results(ops, "/api/v1/consistency-checks/")
    assert [c["site"] for c in listed] == ["MWT2", "BNL"] and "dark" not in listed[0]
    [bnl] = results(ops, "/api/v1/consistency-checks/?site=BN*")
    assert (bnl["n_dark"], bnl["files_on_storage"]) == (2, 5)
    assert ops.get(f"/api/v1/consistency-checks/{bnl['id']}/").json()["dark"] == ["/se/a", "/se/b"]
    assert ops.get("/api/v1/consistency-checks/?sight=BNL").status_code == 400


def test_the_openapi_schema_documents_the_data_flow():
    schema = APIClient().get("/api/schema/?response_format=json").json()
    for path in ("/api/v1/subscriptions/", "/api/v1/subscriptions/{id}/", "/api/v1/subscriptions/{id}/suspend/",
                 "/api/v1/subscriptions/{id}/resume/", "/api/v1/transfers/", "/api/v1/transfer-channels/",
                 "/api/v1/transfer-channels/summary/", "/api/v1/callbacks/", "/api/v1/consistency-checks/"):  # fmt: skip
        assert path in schema["paths"], path

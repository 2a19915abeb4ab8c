"""Subscriptions and the transfer agent with real files on disk (temporary directories as site storage)."""

import socket
import zlib
from pathlib import Path

import pytest

from datasets.choices import SubscriptionState, TransferState
from datasets.models import DatasetReplica, FileReplica, Subscription, TransferChannelStat, TransferRequest
from datasets.services import catalog, containers, subscriptions
from datasets.services.replicas import deterministic_pfn
from datasets.services.subscriptions import evaluate_subscriptions
from datasets.services.transfers import transfer_batch
from quotas.choices import Resource, SubjectKind
from quotas.models import QuotaRule
from tests.factories import UserFactory

from .conftest import run_agents, specs

pytestmark = pytest.mark.django_db

EVGEN = "mc08.105200.T1_McAtNlo_Jimmy.evgen.EVNT.e357"


def contents(prefix, n, size=1000):
    return {f"{prefix}._{i:05d}.pool.root": bytes([i % 251]) * (size + i) for i in range(1, n + 1)}


def held_at(site, name):
    return DatasetReplica.objects.get(dataset__name=name, site=site)


def test_a_subscription_copies_every_file_and_follows_new_versions(grid):
    first = contents("EVNT.01", 3)
    grid.dataset(EVGEN, grid.bnl, first)
    subscription = subscriptions.create_subscription(user=grid.operator, name=EVGEN, site_name="MWT2")
    assert evaluate_subscriptions()["missing"] == 3
    assert TransferRequest.objects.filter(destination=grid.mwt2, state=TransferState.QUEUED).count() == 3
    assert evaluate_subscriptions()["evaluated"] == 0  # nothing changed: nothing to look at, nothing queued twice
    assert transfer_batch(agent="a")["done"] == 3
    for lfn, data in first.items():
        assert Path(deterministic_pfn(grid.mwt2, lfn)).read_bytes() == data
    replica = held_at(grid.mwt2, EVGEN)
    assert (replica.files_present, replica.complete_at is not None) == (3, True)
    subscription.refresh_from_db()
    assert subscription.state == SubscriptionState.DONE

    second = contents("EVNT.02", 2)
    for lfn, data in second.items():
        grid.write(grid.bnl, lfn, data)
    catalog.register_new_version(user=grid.operator, name=EVGEN, files=specs(second))
    grid.place(EVGEN, grid.bnl, second)
    subscription.refresh_from_db()
    assert subscription.state == SubscriptionState.ACTIVE and subscription.needs_evaluation
    assert held_at(grid.mwt2, EVGEN).complete_at is None
    assert evaluate_subscriptions()["missing"] == 2  # one agent cycle after the new version
    transfer_batch(agent="a")
    for lfn, data in second.items():
        assert Path(deterministic_pfn(grid.mwt2, lfn)).read_bytes() == data
    assert held_at(grid.mwt2, EVGEN).files_present == 5
    evaluate_subscriptions()
    subscription.refresh_from_db()
    assert subscription.state == SubscriptionState.DONE


def test_a_container_subscription_takes_present_and_future_datasets(grid):
    catalog.register_new_dataset(user=grid.operator, name="data08.cont", kind="container")
    grid.dataset("data08.00091900.physics.RAW", grid.bnl, contents("RAW.a", 2))
    containers.add_to_container(user=grid.operator, name="data08.cont", members=["data08.00091900.physics.RAW"])
    subscription = subscriptions.create_subscription(user=grid.operator, name="data08.cont", site_name="FZK")
    run_agents()
    assert FileReplica.objects.filter(site=grid.fzk).count() == 2
    subscription.refresh_from_db()
    assert subscription.state == SubscriptionState.DONE

    grid.dataset("data08.00091901.physics.RAW", grid.bnl, contents("RAW.b", 3))
    containers.add_to_container(user=grid.operator, name="data08.cont", members=["data08.00091901.physics.RAW"])
    subscription.refresh_from_db()
    assert subscription.state == SubscriptionState.ACTIVE
    run_agents()
    assert FileReplica.objects.filter(site=grid.fzk).count() == 5
    subscription.refresh_from_db()
    assert subscription.state == SubscriptionState.DONE


def dead_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed when we return: nothing listens there


def test_a_failing_primary_tool_falls_back_to_the_next(grid):
    grid.bnl.storage_http_url = f"http://127.0.0.1:{dead_port()}/BNL"
    grid.bnl.save()
    grid.mwt2.transfer_tools = "http,local"
    grid.mwt2.save()
    grid.dataset(EVGEN, grid.bnl, contents("EVNT.01", 2))
    subscriptions.create_subscription(user=grid.operator, name=EVGEN, site_name="MWT2")
    run_agents()
    done = TransferRequest.objects.filter(destination=grid.mwt2)
    assert [(r.state, r.tool, r.attempts) for r in done] == [(TransferState.DONE, "local", 1)] * 2
    channel = TransferChannelStat.objects.get(source=grid.bnl, destination=grid.mwt2)
    assert (channel.files_done, channel.files_failed) == (2, 0)


def test_a_checksum_mismatch_is_retried_from_another_source(grid):
    good = contents("EVNT.01", 1)
    ((lfn, data),) = good.items()
    grid.dataset(EVGEN, grid.fzk, good)
    grid.place(EVGEN, grid.bnl, {lfn: b"X" * len(data)})  # BNL's copy is corrupted (same size)
    subscriptions.create_subscription(user=grid.operator, name=EVGEN, site_name="MWT2")
    evaluate_subscriptions()
    first = transfer_batch(agent="a")
    assert (first["done"], first["retrying"]) == (0, 1)
    request = TransferRequest.objects.get(destination=grid.mwt2)
    # MWT2 is in BNL's cloud, so BNL was tried first; its bytes were wrong.
    assert request.source == grid.bnl and request.excluded_sources == [grid.bnl.pk]
    assert "adler32" in request.error or "checksum" in request.error
    assert not Path(deterministic_pfn(grid.mwt2, lfn)).exists()
    assert transfer_batch(agent="a")["done"] == 1
    request.refresh_from_db()
    assert (request.state, request.source, request.attempts) == (TransferState.DONE, grid.fzk, 2)
    assert Path(deterministic_pfn(grid.mwt2, lfn)).read_bytes() == data
    assert TransferChannelStat.objects.get(source=grid.bnl, destination=grid.mwt2).files_failed == 1


def test_a_file_failing_every_attempt_makes_the_subscription_stuck_with_the_reason(grid, settings):
    files = contents("EVNT.01", 2)
    grid.dataset(EVGEN, grid.bnl, files)
    lost = next(iter(files))
    Path(deterministic_pfn(grid.bnl, lost)).unlink()  # the only replica is gone from the storage
    subscription = subscriptions.create_subscription(user=grid.operator, name=EVGEN, site_name="MWT2")
    run_agents(rounds=settings.PANDA["TRANSFER_MAX_ATTEMPTS"] + 2)
    request = TransferRequest.objects.get(file__lfn=lost)
    assert (request.state, request.attempts) == (TransferState.FAILED, settings.PANDA["TRANSFER_MAX_ATTEMPTS"])
    subscription.refresh_from_db()
    assert subscription.state == SubscriptionState.STUCK
    assert lost in subscription.reason and subscription.stuck_at is not None
    assert held_at(grid.mwt2, EVGEN).files_present == 1  # the other file arrived

    # Fixed at the source; resumed by an operator: the failed transfer goes again.
    grid.write(grid.bnl, lost, files[lost])
    subscriptions.resume_subscription(user=grid.operator, pk=subscription.pk)
    run_agents()
    subscription.refresh_from_db()
    assert subscription.state == SubscriptionState.DONE
    assert Path(deterministic_pfn(grid.mwt2, lost)).read_bytes() == files[lost]


def test_concurrent_agents_never_copy_a_request_twice(grid):
    grid.dataset(EVGEN, grid.bnl, contents("EVNT.01", 30, size=100))
    subscriptions.create_subscription(user=grid.operator, name=EVGEN, site_name="MWT2")
    evaluate_subscriptions()
    one, two = transfer_batch(agent="one", batch=20), transfer_batch(agent="two", batch=20)
    assert (one["claimed"], two["claimed"]) == (20, 10)
    assert FileReplica.objects.filter(site=grid.mwt2).count() == 30
    assert held_at(grid.mwt2, EVGEN).files_present == 30


def test_storage_quota_refusal_fails_the_transfer_and_leaves_no_file(grid):
    alice = UserFactory(username="alice")
    data = {"user.alice.big._00001.root": b"z" * 5000}
    catalog.register_new_dataset(user=alice, name="user.alice.big", files=specs(data))
    grid.place("user.alice.big", grid.bnl, data)
    QuotaRule.objects.create(subject_kind=SubjectKind.USER, subject_name="alice", resource=Resource.STORAGE_BYTES,
                             hard_limit=6000)  # fmt: skip
    subscriptions.create_subscription(user=alice, name="user.alice.big", site_name="MWT2")
    evaluate_subscriptions()
    transfer_batch(agent="a")
    request = TransferRequest.objects.get(destination=grid.mwt2)
    assert "quota" in request.error
    assert not Path(deterministic_pfn(grid.mwt2, "user.alice.big._00001.root")).exists()
    assert not FileReplica.objects.filter(site=grid.mwt2).exists()


def test_adler32_of_written_file_is_the_catalogs(grid):
    files = contents("EVNT.01", 1, size=3_000_000)
    grid.dataset(EVGEN, grid.bnl, files)
    subscriptions.create_subscription(user=grid.operator, name=EVGEN, site_name="FZK")
    run_agents()
    ((lfn, data),) = files.items()
    copied = Path(deterministic_pfn(grid.fzk, lfn)).read_bytes()
    assert zlib.adler32(copied) == zlib.adler32(data)
    assert Subscription.objects.get(site=grid.fzk).state == SubscriptionState.DONE


def test_a_stuck_subscription_keeps_its_first_stuck_time_through_repairs_and_counts_them(grid, settings):
    from datetime import timedelta

    from django.utils import timezone

    settings.PANDA = {**settings.PANDA, "SUBSCRIPTION_REPAIR_SECONDS": 60}
    files = contents("EVNT.01", 1)
    grid.dataset(EVGEN, grid.bnl, files)
    Path(deterministic_pfn(grid.bnl, next(iter(files)))).unlink()
    subscription = subscriptions.create_subscription(user=grid.operator, name=EVGEN, site_name="MWT2")
    run_agents(rounds=settings.PANDA["TRANSFER_MAX_ATTEMPTS"] + 2)
    subscription.refresh_from_db()
    first_stuck = subscription.stuck_at
    assert (subscription.state, subscription.stuck_count) == (SubscriptionState.STUCK, 1)
    Subscription.objects.filter(pk=subscription.pk).update(stuck_at=first_stuck - timedelta(minutes=5))
    assert evaluate_subscriptions()["repaired"] == 1  # failed transfers queued again
    assert evaluate_subscriptions()["repaired"] == 0  # not again before the repair delay
    subscription.refresh_from_db()
    assert subscription.state == SubscriptionState.ACTIVE and subscription.stuck_at == first_stuck - timedelta(
        minutes=5
    )
    run_agents(rounds=settings.PANDA["TRANSFER_MAX_ATTEMPTS"] + 2)
    subscription.refresh_from_db()
    assert (subscription.state, subscription.stuck_count) == (SubscriptionState.STUCK, 2)
    assert subscription.stuck_at == first_stuck - timedelta(minutes=5)
    assert subscription.repaired_at is not None and subscription.repaired_at <= timezone.now()

"""The Setupper's bulk catalog calls: what one brokerage batch makes at once, as the calls one by one did."""

import uuid

import pytest
from django.utils import timezone

from datasets.choices import Activity, CallbackKind, CallbackState, DatasetKind, DatasetState, VersionState
from datasets.models import ContainerMember, Dataset, DatasetFile, DatasetReplica, File, ReplicaCallback, Subscription
from datasets.services import callbacks, policy, subscriptions, system
from tests.factories import CloudFactory, SiteFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def sites(db):
    cloud = CloudFactory(name="US", tier1="BNL")
    return SiteFactory(name="BNL", cloud=cloud), SiteFactory(name="MWT2", cloud=cloud)


def files(n, size=100):
    return [
        File.objects.create(lfn=f"EVNT.{uuid.uuid4().hex}.root", guid=uuid.uuid4(), fsize=size + k, adler32="00000001")
        for k in range(n)
    ]


def test_dispatch_blocks_of_a_batch_are_frozen_with_their_files_and_skip_the_placement_rules(monkeypatch):
    placed = []
    monkeypatch.setattr(policy, "apply_to_new", lambda datasets, **kw: placed.extend(datasets))
    a, b = files(2), files(3, size=1000)
    made = system.create_dispatch_blocks(
        [("panda.1.20260101.managed.x_dis11", [f.pk for f in a]), ("panda.2.20260101.user.y_dis12", [f.pk for f in b])]
    )
    assert [d.name for d in made] == ["panda.1.20260101.managed.x_dis11", "panda.2.20260101.user.y_dis12"]
    first, second = (Dataset.objects.get(pk=d.pk) for d in made)
    assert (first.kind, first.state, first.n_files, first.bytes) == (DatasetKind.DATABLOCK, DatasetState.FROZEN, 2, 201)
    assert (second.n_files, second.bytes, second.category) == (3, 3003, "dispatch")
    version = second.versions.get()
    assert (version.number, version.state, version.n_files) == (1, VersionState.CLOSED, 3)
    assert version.closed_at is not None
    assert set(DatasetFile.objects.filter(dataset=second).values_list("file_id", flat=True)) == {f.pk for f in b}
    assert placed == []  # PanDA's blocks are never handed to the rules


def test_destination_datasets_share_a_new_container_and_write_into_a_plain_output_directly(sites):
    owner = UserFactory(username="prod")
    plain = system._new("mc11.000001.plain.AOD.e1", DatasetKind.DATASET, owner)
    found = system.destination_datasets(
        [
            ("mc11.000002.out.AOD.e1", "mc11.000002.out.AOD.e1_sub101", owner),
            ("mc11.000002.out.AOD.e1", "mc11.000002.out.AOD.e1_sub205", owner),
            ("mc11.000001.plain.AOD.e1", "mc11.000001.plain.AOD.e1_sub101", owner),
            ("bad name!", "bad name!_sub101", owner),
        ]
    )
    container = Dataset.objects.get(name="mc11.000002.out.AOD.e1")
    assert container.kind == DatasetKind.CONTAINER
    assert [d and d.name for d in found] == [
        "mc11.000002.out.AOD.e1_sub101", "mc11.000002.out.AOD.e1_sub205", plain.name, None,
    ]  # fmt: skip
    members = set(ContainerMember.objects.filter(container=container).values_list("member__name", flat=True))
    assert members == {"mc11.000002.out.AOD.e1_sub101", "mc11.000002.out.AOD.e1_sub205"}
    sub = Dataset.objects.get(name="mc11.000002.out.AOD.e1_sub205")
    assert (sub.kind, sub.state, sub.owner_id, sub.versions.get().state) == (
        DatasetKind.DATASET, DatasetState.OPEN, owner.pk, VersionState.OPEN,
    )  # fmt: skip


def test_subscribe_many_creates_the_new_ones_and_raises_existing_ones_like_subscribe(
    sites, django_capture_on_commit_callbacks
):
    bnl, mwt2 = sites
    low = system._new("user.alice.low.e1", DatasetKind.DATASET, None)
    new = system._new("user.alice.new.e1", DatasetKind.DATASET, None)
    old = subscriptions.subscribe(dataset=low, site=bnl, owner_name="alice", priority=1)
    Subscription.objects.filter(pk=old.pk).update(needs_evaluation=False)
    with django_capture_on_commit_callbacks() as queued:
        subscriptions.subscribe_many(
            [(low, bnl), (new, mwt2), (new, mwt2)], owner_name="panda", activity=Activity.ARCHIVAL
        )
    old.refresh_from_db()
    assert (old.priority, old.needs_evaluation, old.owner_name) == (3, True, "alice")
    made = Subscription.objects.get(dataset=new)
    assert (made.site, made.activity, made.priority, made.owner_name) == (mwt2, Activity.ARCHIVAL, 3, "panda")
    assert len(queued) == 1  # the agent is queued once per call, not per subscription


def test_register_callbacks_fire_at_once_for_a_replica_already_complete(sites, monkeypatch):
    bnl, mwt2 = sites
    fired = []
    monkeypatch.setitem(callbacks._handlers, CallbackKind.ACTIVATE_JOBS, lambda d, s, now: fired.append((d.pk, s.pk)))
    done, waiting = system.create_dispatch_blocks([("panda.1.x_dis1", [f.pk for f in files(1)]),
                                                   ("panda.1.y_dis2", [f.pk for f in files(1)])])  # fmt: skip
    DatasetReplica.objects.create(dataset=done, site=bnl, files_present=1, complete_at=timezone.now())
    made = callbacks.register_callbacks(
        [(done, bnl), (waiting, bnl), (done, mwt2)], kind=CallbackKind.ACTIVATE_JOBS, owner_name="panda"
    )
    assert fired == [(done.pk, bnl.pk)]
    states = {(c.dataset_id, c.site_id): c.state for c in ReplicaCallback.objects.filter(pk__in=[c.pk for c in made])}
    assert states == {(done.pk, bnl.pk): CallbackState.DONE, (waiting.pk, bnl.pk): CallbackState.WAITING,
                      (done.pk, mwt2.pk): CallbackState.WAITING}  # fmt: skip

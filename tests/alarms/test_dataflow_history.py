"""Operations history of the data flow: transfers by channel (what happened between snapshots), the
queue by destination, storage by site; their retention and the selectors the plots read."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alarms.models import StorageSnapshot, TransferChannelSnapshot, TransferQueueSnapshot
from alarms.selectors import channel_history, storage_history, transfer_history
from alarms.services.history import take_dataflow_snapshot, take_storage_snapshot, take_transfer_snapshot
from alarms.tasks import snapshot_dataflow
from datasets.models import SiteReplicaTotals, TransferChannelStat
from datasets.services import subscriptions
from datasets.services.subscriptions import evaluate_subscriptions
from datasets.services.transfers import transfer_batch
from pandamon.models import WorkerRun
from sites.models import StorageSpace
from sites.services import record_storage_space
from tests.dataflow.conftest import Grid

from ..factories import SiteFactory

pytestmark = pytest.mark.django_db
EVGEN = "mc08.105200.T1_McAtNlo_Jimmy.evgen.EVNT.e357"


def counts(row):
    return row.files_done, row.files_failed, row.bytes_done


def channel_row(taken_at, source, destination):
    return TransferChannelSnapshot.objects.get(taken_at=taken_at, source=source, destination=destination)


def test_channel_snapshots_count_what_happened_since_the_previous_one_across_hours():
    bnl, mwt2, fzk = SiteFactory(name="BNL"), SiteFactory(name="MWT2"), SiteFactory(name="FZK")
    hour = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    TransferChannelStat.objects.create(source=fzk, destination=mwt2, hour=hour - timedelta(hours=2), files_done=50)
    stat = TransferChannelStat.objects.create(source=bnl, destination=mwt2, hour=hour, files_done=3, files_failed=1,
                                              bytes_done=300)  # fmt: skip
    t1 = hour + timedelta(minutes=10)
    take_transfer_snapshot(t1)
    assert counts(channel_row(t1, bnl, mwt2)) == (3, 1, 300), "the first snapshot counts its hour so far"
    assert counts(channel_row(t1, None, None)) == (3, 1, 300)
    assert not TransferChannelSnapshot.objects.filter(source=fzk).exists(), "quiet since before the snapshot"

    # The hour goes on, the next one begins: only what came after the first snapshot counts.
    TransferChannelStat.objects.filter(pk=stat.pk).update(files_done=5, bytes_done=500)
    TransferChannelStat.objects.create(source=bnl, destination=mwt2, hour=hour + timedelta(hours=1), files_done=4,
                                       bytes_done=400)  # fmt: skip
    TransferChannelStat.objects.create(source=fzk, destination=bnl, hour=hour + timedelta(hours=1), files_failed=7)
    t2 = hour + timedelta(hours=1, minutes=5)
    take_transfer_snapshot(t2)
    assert counts(channel_row(t2, bnl, mwt2)) == (6, 0, 600)
    assert counts(channel_row(t2, fzk, bnl)) == (0, 7, 0)
    assert counts(channel_row(t2, None, None)) == (6, 7, 600)

    t3 = t2 + timedelta(minutes=10)
    take_transfer_snapshot(t3)
    assert counts(channel_row(t3, bnl, mwt2)) == (0, 0, 0), "nothing new"
    assert counts(channel_row(t3, None, None)) == (0, 0, 0)

    since = hour
    edges, series = transfer_history(since=since)
    assert edges == [t1, t2, t3]
    assert series["files_done"] == [3, 6, 0] and series["files_failed"] == [1, 7, 0]
    assert series["bytes_done"] == [300, 600, 0] and series["queued"] == [0, 0, 0]
    _, into_mwt2 = transfer_history(since=since, destination=mwt2)
    assert into_mwt2["files_done"] == [3, 6, 0] and into_mwt2["files_failed"] == [1, 0, 0]
    _, out_of_fzk = transfer_history(since=since, source=fzk)
    assert out_of_fzk == {"files_done": [0, 0, 0], "files_failed": [0, 7, 0], "bytes_done": [0, 0, 0]}
    edges, channels = channel_history(since=since, site=bnl)
    assert set(channels) == {"BNL->MWT2", "FZK->BNL"}
    assert channels["BNL->MWT2"]["files_done"] == [3, 6, 0] and channels["FZK->BNL"]["files_failed"] == [0, 7, 0]


@pytest.fixture
def grid(db, tmp_path, settings):
    settings.PANDA = {**settings.PANDA, "TRANSFER_RETRY_SECONDS": 0, "TRANSFER_TIMEOUT_SECONDS": 10}
    return Grid(tmp_path)


def test_snapshots_follow_real_transfers_and_the_queue(grid):
    files = {f"EVNT.01._{i:05d}.pool.root": bytes([i]) * (1000 + i) for i in (1, 2, 3)}
    grid.dataset(EVGEN, grid.bnl, files)
    subscriptions.create_subscription(user=grid.operator, name=EVGEN, site_name="MWT2")
    evaluate_subscriptions()
    take_transfer_snapshot()
    queue = {row.destination_id: (row.queued, row.submitted) for row in TransferQueueSnapshot.objects.all()}
    assert queue == {grid.mwt2.pk: (3, 0), None: (3, 0)}

    assert transfer_batch(agent="a")["done"] == 3
    later = timezone.now() + timedelta(seconds=1)
    take_transfer_snapshot(later)
    assert counts(channel_row(later, grid.bnl, grid.mwt2)) == (3, 0, sum(len(data) for data in files.values()))
    assert TransferQueueSnapshot.objects.get(taken_at=later, destination=None).queued == 0
    assert not TransferQueueSnapshot.objects.filter(taken_at=later, destination=grid.mwt2).exists()
    _, series = transfer_history(since=later - timedelta(hours=1), destination=grid.mwt2)
    assert series["queued"] == [3, 0] and series["files_done"][-1] == 3


def test_storage_snapshots_record_the_space_report_and_the_catalog():
    bnl, mwt2, idle = SiteFactory(name="BNL"), SiteFactory(name="MWT2"), SiteFactory(name="IDLE")
    record_storage_space(site=bnl, used_bytes=700, free_bytes=300, total_bytes=1000, reported_by="storage agent")
    for site, files, size in ((bnl, 2, 550), (mwt2, 1, 90)):  # what the catalog holds there
        SiteReplicaTotals.objects.create(site=site, files=files, bytes=size)
    now = timezone.now()
    assert take_storage_snapshot(now) == 3
    at_bnl = StorageSnapshot.objects.get(site=bnl)
    assert (at_bnl.used_bytes, at_bnl.free_bytes, at_bnl.total_bytes, at_bnl.catalog_bytes) == (700, 300, 1000, 550)
    assert at_bnl.reported_at == StorageSpace.objects.get(site=bnl).reported_at
    at_mwt2 = StorageSnapshot.objects.get(site=mwt2)
    assert (at_mwt2.used_bytes, at_mwt2.total_bytes, at_mwt2.catalog_bytes) == (None, None, 90), "never reported"
    total = StorageSnapshot.objects.get(site=None)
    assert (total.used_bytes, total.total_bytes, total.catalog_bytes) == (700, 1000, 640)
    assert not StorageSnapshot.objects.filter(site=idle).exists()

    record_storage_space(site=bnl, used_bytes=800, free_bytes=200, total_bytes=1000, reported_by="storage agent")
    later = now + timedelta(minutes=10)
    take_storage_snapshot(later)
    edges, series = storage_history(since=now - timedelta(hours=1), site=bnl)
    assert edges == [now, later] and series["used_bytes"] == [700, 800] and series["catalog_bytes"] == [550, 550]
    _, series = storage_history(since=now - timedelta(hours=1), site=mwt2)
    assert series["used_bytes"] == [None, None] and series["catalog_bytes"] == [90, 90]
    _, series = storage_history(since=now - timedelta(hours=1))
    assert series["free_bytes"] == [300, 200] and series["catalog_bytes"] == [640, 640]


def test_old_snapshots_are_dropped_after_the_retention(settings):
    site = SiteFactory(name="BNL")
    old = timezone.now() - timedelta(days=settings.PANDA["HISTORY_DAYS"] + 1)
    kept = timezone.now() - timedelta(days=settings.PANDA["HISTORY_DAYS"] - 1)
    for at in (old, kept):
        TransferChannelSnapshot.objects.create(taken_at=at, source=site, destination=site, files_done=1)
        TransferQueueSnapshot.objects.create(taken_at=at, destination=site, queued=1)
        StorageSnapshot.objects.create(taken_at=at, site=site, catalog_bytes=1)
    assert take_dataflow_snapshot() == {"transfer_rows": 2, "storage_rows": 1}, "the totals rows"
    for model in (TransferChannelSnapshot, TransferQueueSnapshot, StorageSnapshot):
        assert not model.objects.filter(taken_at=old).exists(), model
        assert model.objects.filter(taken_at=kept).exists(), model


def test_the_periodic_worker_records_its_run():
    snapshot_dataflow()
    run = WorkerRun.objects.get(name="alarms.snapshot_dataflow")
    assert (run.status, run.counts) == (WorkerRun.Status.DONE, {"transfer_rows": 2, "storage_rows": 1})

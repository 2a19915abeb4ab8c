"""Operations history: periodic snapshots of jobs by site and state, transfers by channel and
destination, and storage by site, with retention (PANDA_HISTORY_DAYS)."""

from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from datasets.choices import TransferState
from datasets.models import SiteReplicaTotals, TransferChannelStat, TransferRequest
from jobs.choices import FINAL_STATES, LIVE_STATES
from jobs.models import Job
from sites.models import Site, StorageSpace

from ..models import JobCountSnapshot, StorageSnapshot, TransferChannelSnapshot, TransferQueueSnapshot


def _write(model, rows, now):
    """Insert a snapshot's rows and drop the model's snapshots older than the retention, together."""
    with transaction.atomic():
        model.objects.bulk_create(rows, batch_size=2000)
        model.objects.filter(taken_at__lt=now - timedelta(days=settings.PANDA["HISTORY_DAYS"])).delete()
    return len(rows)


def take_snapshot(now=None):
    """Record jobs per site and state now (live states) and ended since the last snapshot (final ones),
    per site and in total (site empty); then drop snapshots older than the retention. Returns rows written."""
    now = now or timezone.now()
    previous = JobCountSnapshot.objects.aggregate(at=Max("taken_at"))["at"]
    since = previous or now - timedelta(seconds=settings.PANDA["HISTORY_INTERVAL_SECONDS"])
    live = Job.objects.filter(status__in=LIVE_STATES)
    ended = Job.objects.filter(status__in=FINAL_STATES, modification_time__gte=since, modification_time__lt=now)
    rows, totals = [], {}
    for queryset in (live, ended):
        for site_id, status, n in queryset.values_list("computing_site_id", "status").annotate(n=Count("*")).order_by():
            if site_id is not None:
                rows.append(JobCountSnapshot(taken_at=now, site_id=site_id, status=status, n=n))
            totals[status] = totals.get(status, 0) + n
    rows += [JobCountSnapshot(taken_at=now, site=None, status=status, n=n) for status, n in totals.items()]
    return _write(JobCountSnapshot, rows, now)


def take_dataflow_snapshot(now=None):
    """The transfer and storage snapshots, taken at the same moment. Returns {kind: rows written}."""
    now = now or timezone.now()
    return {"transfer_rows": take_transfer_snapshot(now), "storage_rows": take_storage_snapshot(now)}


COUNTERS = ("files_done", "files_failed", "bytes_done")


def _hour(moment):
    return moment.replace(minute=0, second=0, microsecond=0)


def take_transfer_snapshot(now=None):
    """Per channel, files done and failed and bytes done since the previous snapshot; per destination,
    requests queued and submitted now; plus a row of totals for each (site empty), always written.

    The hourly channel rows touched since the previous snapshot (its hour onwards) are summed and what
    the previous snapshot had already seen of its hour's row (its hour_* cursor) subtracted. Returns rows."""
    now = now or timezone.now()
    previous = TransferChannelSnapshot.objects.aggregate(at=Max("taken_at"))["at"]
    since = previous or now - timedelta(seconds=settings.PANDA["HISTORY_INTERVAL_SECONDS"])
    seen = {}
    if previous is not None:
        seen = {
            (row.source_id, row.destination_id): row
            for row in TransferChannelSnapshot.objects.filter(taken_at=previous, destination__isnull=False)
        }
    sums = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    cursors = {}
    # A range of the unique (hour, source, destination) index: the channels active in the last hour or two.
    stats = TransferChannelStat.objects.filter(hour__gte=_hour(since), hour__lte=now)
    for source_id, destination_id, hour, *values in stats.values_list("source_id", "destination_id", "hour", *COUNTERS):
        channel = sums[(source_id, destination_id)]
        for name, value in zip(COUNTERS, values, strict=True):
            channel[name] += value
        if hour == _hour(now):
            cursors[(source_id, destination_id)] = dict(zip(COUNTERS, values, strict=True))
    rows, totals = [], dict.fromkeys(COUNTERS, 0)
    for (source_id, destination_id), channel in sums.items():
        before = seen.get((source_id, destination_id))
        since_then = {name: max(channel[name] - (getattr(before, f"hour_{name}") if before else 0), 0)
                      for name in COUNTERS}  # fmt: skip
        cursor = cursors.get((source_id, destination_id), dict.fromkeys(COUNTERS, 0))
        rows.append(TransferChannelSnapshot(taken_at=now, source_id=source_id, destination_id=destination_id,
                                            **since_then, **{f"hour_{name}": v for name, v in cursor.items()}))  # fmt: skip
        for name in COUNTERS:
            totals[name] += since_then[name]
    rows.append(TransferChannelSnapshot(taken_at=now, **totals))
    written = _write(TransferChannelSnapshot, rows, now)
    return written + _write(TransferQueueSnapshot, _queue_rows(now), now)


def _queue_rows(now):
    # destination IN (every site) AND state IN (queued, submitted): ranges of the (destination, state) index.
    site_ids = list(Site.objects.values_list("pk", flat=True))
    waiting = (
        TransferRequest.objects.filter(
            destination_id__in=site_ids, state__in=(TransferState.QUEUED, TransferState.SUBMITTED)
        )
        .values_list("destination_id")
        .annotate(
            queued=Count("pk", filter=Q(state=TransferState.QUEUED)),
            submitted=Count("pk", filter=Q(state=TransferState.SUBMITTED)),
        )
        .order_by()
    )
    rows = [TransferQueueSnapshot(taken_at=now, destination_id=site_id, queued=queued, submitted=submitted)
            for site_id, queued, submitted in waiting]  # fmt: skip
    rows.append(TransferQueueSnapshot(taken_at=now, queued=sum(r.queued for r in rows),
                                      submitted=sum(r.submitted for r in rows)))  # fmt: skip
    return rows


def take_storage_snapshot(now=None):
    """Per site, its last space report (used, free, total, when) and the bytes of its dataset replicas in the
    catalog; plus the sum over sites (site empty; space figures summed over the sites that reported).
    Sites with neither a report nor replicas are left out. Returns rows written."""
    now = now or timezone.now()
    spaces = {space.site_id: space for space in StorageSpace.objects.all()}
    catalog = dict(SiteReplicaTotals.objects.values_list("site_id", "bytes"))  # each stored file once
    rows = []
    for site_id in sorted(spaces.keys() | {pk for pk, total in catalog.items() if total}):
        space = spaces.get(site_id)
        rows.append(StorageSnapshot(
            taken_at=now, site_id=site_id, catalog_bytes=catalog.get(site_id) or 0,
            used_bytes=space and space.used_bytes, free_bytes=space and space.free_bytes,
            total_bytes=space and space.total_bytes, reported_at=space and space.reported_at,
        ))  # fmt: skip

    def total(name):
        return sum(getattr(space, name) for space in spaces.values()) if spaces else None

    rows.append(StorageSnapshot(taken_at=now, site=None, catalog_bytes=sum(r.catalog_bytes for r in rows),
                                used_bytes=total("used_bytes"), free_bytes=total("free_bytes"),
                                total_bytes=total("total_bytes")))  # fmt: skip
    return _write(StorageSnapshot, rows, now)

"""Reads for alarms."""

from django.db.models import Case, IntegerField, Q, Sum, Value, When

from .choices import AlarmState, Severity, channel_subject
from .models import Alarm, JobCountSnapshot, StorageSnapshot, TransferChannelSnapshot, TransferQueueSnapshot


def live_alarms(*, limit):
    """Alarms not resolved, most severe then most recent first."""
    rank = Case(When(severity=Severity.CRITICAL, then=Value(0)), When(severity=Severity.WARNING, then=Value(1)),
                default=Value(2), output_field=IntegerField())  # fmt: skip
    live = Alarm.objects.exclude(state=AlarmState.RESOLVED).annotate(rank=rank)
    return live.order_by("rank", "-last_seen").values(
        "id", "severity", "state", "category", "subject_kind", "subject", "message", "count", "last_seen"
    )[:limit]


def job_history(*, site=None, since):
    """(edges, {status: [n per snapshot]}) of a site's snapshots (or the totals) since `since`."""
    rows = (
        JobCountSnapshot.objects.filter(site=site, taken_at__gte=since)
        .order_by("taken_at")
        .values_list("taken_at", "status", "n")
    )
    edges, series = [], {}
    for taken_at, status, n in rows:
        if not edges or edges[-1] != taken_at:
            edges.append(taken_at)
        series.setdefault(status, {})[taken_at] = n
    return edges, {status: [by_time.get(edge, 0) for edge in edges] for status, by_time in series.items()}


def _edges(model, since, **totals_row):
    """The snapshot times since `since`: every snapshot writes a totals row, so they are its rows' times."""
    return list(model.objects.filter(taken_at__gte=since, **totals_row).order_by("taken_at")
                .values_list("taken_at", flat=True))  # fmt: skip


def _series(edges, by_time, names, missing):
    return {name: [by_time.get(edge, {}).get(name, missing) for edge in edges] for name in names}


TRANSFER_SERIES = ("files_done", "files_failed", "bytes_done")
QUEUE_SERIES = ("queued", "submitted")


def transfer_history(*, since, source=None, destination=None):
    """(edges, {files_done, files_failed, bytes_done, queued, submitted: [value per snapshot]}) since `since`.

    files_* and bytes_done count what happened between a snapshot and the one before. Without source and
    destination: every channel; with one or both (Site objects): the channels from the source and/or into
    the destination, summed. queued / submitted are the requests waiting for and copying to the destination
    (every destination when none is given); they are left out when only a source is given."""
    edges = _edges(TransferChannelSnapshot, since, source=None, destination=None)
    channels = TransferChannelSnapshot.objects.filter(taken_at__gte=since)
    if source is None and destination is None:
        channels = channels.filter(source=None, destination=None)
    else:
        channels = channels.filter(**{k: v for k, v in (("source", source), ("destination", destination)) if v})
    sums = channels.values_list("taken_at").annotate(*(Sum(name) for name in TRANSFER_SERIES)).order_by()
    by_time = {at: dict(zip(TRANSFER_SERIES, values, strict=True)) for at, *values in sums}
    series = _series(edges, by_time, TRANSFER_SERIES, 0)
    if destination is not None or source is None:
        queues = TransferQueueSnapshot.objects.filter(taken_at__gte=since, destination=destination)
        by_time = {at: {"queued": queued, "submitted": submitted}
                   for at, queued, submitted in queues.values_list("taken_at", "queued", "submitted")}  # fmt: skip
        series.update(_series(edges, by_time, QUEUE_SERIES, 0))
    return edges, series


def channel_history(*, since, site):
    """({channel: {files_done, files_failed, bytes_done: [value per snapshot]}}) of the channels into and out
    of a site, since `since`, with the edges: (edges, {"BNL->MWT2": {...}}). For a per-channel plot."""
    edges = _edges(TransferChannelSnapshot, since, source=None, destination=None)
    rows = (
        TransferChannelSnapshot.objects.filter(taken_at__gte=since)
        .filter(Q(source=site) | Q(destination=site))
        .values_list("taken_at", "source__name", "destination__name", *TRANSFER_SERIES)
    )
    by_channel = {}
    for at, source, destination, *values in rows:
        by_channel.setdefault(channel_subject(source, destination), {})[at] = dict(
            zip(TRANSFER_SERIES, values, strict=True)
        )
    return edges, {channel: _series(edges, by_time, TRANSFER_SERIES, 0)
                   for channel, by_time in sorted(by_channel.items())}  # fmt: skip


STORAGE_SERIES = ("used_bytes", "free_bytes", "total_bytes", "catalog_bytes")


def storage_history(*, since, site=None):
    """(edges, {used_bytes, free_bytes, total_bytes, catalog_bytes: [value per snapshot]}) of a site (or the
    sum over sites) since `since`. Space figures are the site's last report at each snapshot (None when it
    had none); catalog_bytes the bytes of its dataset replicas in the catalog."""
    edges = _edges(StorageSnapshot, since, site=None)
    rows = StorageSnapshot.objects.filter(taken_at__gte=since, site=site).values_list("taken_at", *STORAGE_SERIES)
    by_time = {at: dict(zip(STORAGE_SERIES, values, strict=True)) for at, *values in rows}
    return edges, _series(edges, by_time, STORAGE_SERIES, None)

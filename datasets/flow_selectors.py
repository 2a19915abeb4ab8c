"""Reads of the data flow: subscriptions, transfers, channels, and the data side of jobs and sites.

Shared by the portal pages (datasets/flow_pages.py, the job, site and home pages), the REST API
(datasets/flow_api.py), the job status analyzer and the subscription agent.
"""

import re
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, F, Max, OuterRef, Q, Subquery, Sum
from django.utils import timezone

from jobs.choices import FileType
from pandamon.errors import NotFound
from sites.models import Site

from .choices import Activity, DatasetKind, SubscriptionState, TransferState
from .models import (
    Dataset,
    DatasetFile,
    DatasetReplica,
    Subscription,
    TransferChannelStat,
    TransferRequest,
)
from .selectors import MAX_MEMBERS_SHOWN, percent
from .services.containers import descendants

WILDCARD = re.compile(r"^[A-Za-z0-9_\-.:+*]{1,255}$")


def dispatch_progress(block_name, site_id):
    """How far a dispatch block (or any dataset) is on its way to a site: files there and transfer states."""
    dataset = Dataset.objects.filter(name=block_name).first()
    if dataset is None:
        return {"files": 0, "present": 0, "queued": 0, "submitted": 0, "failed": 0, "last_error": "",
                "subscription": None}  # fmt: skip
    replica = DatasetReplica.objects.filter(dataset=dataset, site_id=site_id).first()
    requests = TransferRequest.objects.filter(destination_id=site_id, file__memberships__dataset=dataset)
    by_state = dict(requests.values_list("state").annotate(n=Count("id")).order_by())
    last = requests.exclude(error="").order_by("-id").values_list("error", flat=True).first()
    return {
        "files": dataset.n_files, "present": replica.files_present if replica else 0,
        "queued": by_state.get("queued", 0), "submitted": by_state.get("submitted", 0),
        "failed": by_state.get("failed", 0), "last_error": last or "",
        "subscription": Subscription.objects.filter(dataset=dataset, site_id=site_id).first(),
        "queue_position": queue_position(requests),
    }  # fmt: skip


def queue_position(requests):
    """How many queued transfers an agent claims before the first queued one of `requests` (None: none queued).

    Agents claim by activity rank, then priority, then age (datasets.services.transfers), so that is the order
    counted here."""
    from .services.priorities import ahead_of, ranks

    current = ranks()
    queued = list(requests.filter(state="queued").values("id", "priority", "activity"))
    if not queued:
        return None
    first = min(queued, key=lambda row: (current[row["activity"]], -row["priority"], row["id"]))
    return TransferRequest.objects.filter(ahead_of(first, current), state="queued").count()


def failing_channels(site_id, *, now=None):
    """Channels into a site failing over the alarm rule's window (PANDA_ALARMS CHANNEL_*):
    [{"source", "since" (the first hour with failures), "failed", "done", "last_error"}], worst first."""
    now = now or timezone.now()
    limits = settings.PANDA_ALARMS
    start = (now - timedelta(hours=limits["CHANNEL_WINDOW_HOURS"])).replace(minute=0, second=0, microsecond=0)
    rows = TransferChannelStat.objects.filter(destination_id=site_id, hour__gte=start).order_by("hour")
    by_source = {}
    for row in rows.values("source__name", "hour", "files_done", "files_failed", "last_error"):
        channel = by_source.setdefault(row["source__name"], {"source": row["source__name"], "since": None,
                                                              "failed": 0, "done": 0, "last_error": ""})  # fmt: skip
        channel["failed"] += row["files_failed"]
        channel["done"] += row["files_done"]
        if row["files_failed"]:
            channel["since"] = channel["since"] or row["hour"]
            channel["last_error"] = row["last_error"] or channel["last_error"]
    failing = [c for c in by_source.values()
               if c["failed"] and c["failed"] / (c["failed"] + c["done"]) >= limits["CHANNEL_FAILED_SHARE"]]  # fmt: skip
    return sorted(failing, key=lambda c: -c["failed"])


# --- The data flow: subscriptions, transfers, channels (the API and the portal pages) -------------

LIVE_TRANSFER_STATES = (TransferState.QUEUED, TransferState.SUBMITTED)
ENDED_TRANSFER_STATES = (TransferState.DONE, TransferState.FAILED)
RECENT_FAILURES = 20
CHANNEL_ERRORS = 10
CHANNEL_ERROR_DAYS = 7
WORST_CHANNELS = 5


def subscription_rows():
    """Subscriptions with their dataset and site, and what the site holds of the dataset (subqueries on the
    dataset replica's unique (dataset, site) index: the location catalog keeps those counts up to date)."""
    replica = DatasetReplica.objects.filter(dataset_id=OuterRef("dataset_id"), site_id=OuterRef("site_id"))
    return Subscription.objects.select_related("dataset", "site").annotate(
        files_present=Subquery(replica.values("files_present")[:1]),
        bytes_present=Subquery(replica.values("bytes_present")[:1]),
    )


def subscription_detail(*, pk):
    found = subscription_rows().filter(pk=pk).first()
    if found is None:
        raise NotFound(f"no subscription {pk}")
    return found


def progress(*, kind, files_wanted, bytes_wanted, files_present, bytes_present):
    """What a site holds of a dataset: files and bytes present of wanted, % and complete (None for a container,
    whose files are its members')."""
    if kind == DatasetKind.CONTAINER:
        return None
    present = files_present or 0
    return {"files_wanted": files_wanted, "files_present": present, "bytes_wanted": bytes_wanted,
            "bytes_present": bytes_present or 0, "pct": percent(present, files_wanted),
            "complete": present >= files_wanted}  # fmt: skip


def subscribed_dataset_ids(subscription):
    """The datasets whose files a subscription wants: its dataset, or a container's datasets (not erased)."""
    return wanted_dataset_ids([subscription.dataset])


def wanted_dataset_ids(datasets):
    """Ids of the (not erased) datasets holding the files that subscriptions to `datasets` want."""
    containers = [d.pk for d in datasets if d.kind == DatasetKind.CONTAINER]
    direct = [d.pk for d in datasets if d.kind != DatasetKind.CONTAINER]
    return list(
        Dataset.objects.filter(pk__in=[*direct, *descendants(containers)], erased_at__isnull=True)
        .exclude(kind=DatasetKind.CONTAINER)
        .values_list("pk", flat=True)
    )


def _files_of(dataset_ids):
    """The files of these datasets, as a subquery (a semi-join: a file in two of them counts once)."""
    return DatasetFile.objects.filter(dataset_id__in=dataset_ids).values("file_id")


def transfer_counts(*, site_id, dataset_ids):
    """{state: n} of the transfers of these datasets' files to the site (every state present, 0 when none)."""
    rows = (
        TransferRequest.objects.filter(destination_id=site_id, file_id__in=_files_of(dataset_ids))
        .values_list("state")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {**{state: 0 for state in TransferState.values}, **dict(rows)}


def subscription_transfer_counts(subscription):
    """{state: n} of the transfers of the subscribed dataset's files to the site (None for a container,
    whose files are those of its members)."""
    if subscription.dataset.kind == DatasetKind.CONTAINER:
        return None
    return transfer_counts(site_id=subscription.site_id, dataset_ids=[subscription.dataset_id])


def transfer_failures(*, site_id, dataset_ids, limit=RECENT_FAILURES):
    """The latest transfers of these datasets' files to the site that have an error: failed for good, or
    queued again after a failed attempt (newest first)."""
    rows = (
        TransferRequest.objects.filter(destination_id=site_id, file_id__in=_files_of(dataset_ids))
        .exclude(error="")
        .order_by("-id")
        .values("id", "state", "attempts", "error", "tool", "next_attempt_at", "finished_at", "source__name",
                lfn=F("file__lfn"))[:limit]
    )  # fmt: skip
    return [_renamed(row, source__name="source") for row in rows]


def _renamed(row, **names):
    """A values() row with some keys renamed (values() may not name an annotation like a model field)."""
    for old, new in names.items():
        row[new] = row.pop(old)
    return row


def channel_errors(*, destination_id, since, limit=CHANNEL_ERRORS):
    """The latest hours with a failed transfer into the site, from any source, with the last error of each."""
    rows = (
        TransferChannelStat.objects.filter(destination_id=destination_id, hour__gte=since)
        .exclude(last_error="")
        .order_by("-hour", "source__name")
        .values("hour", "files_failed", "files_done", "last_error", "source__name")[:limit]
    )
    return [_renamed(row, source__name="source") for row in rows]


def member_progress(*, dataset_ids, site_id, limit=MAX_MEMBERS_SHOWN):
    """(rows, total): a container subscription's datasets by name with what the site holds of each."""
    members = Dataset.objects.filter(pk__in=dataset_ids).order_by("name")
    rows = list(members.values("id", "name", "kind", "n_files", "bytes")[:limit])
    held = {
        dataset_id: (files, size)
        for dataset_id, files, size in DatasetReplica.objects.filter(
            site_id=site_id, dataset_id__in=[row["id"] for row in rows]
        ).values_list("dataset_id", "files_present", "bytes_present")
    }
    for row in rows:
        files, size = held.get(row.pop("id"), (0, 0))
        row["progress"] = progress(kind=row["kind"], files_wanted=row["n_files"], bytes_wanted=row["bytes"],
                                   files_present=files, bytes_present=size)  # fmt: skip
    return rows, len(dataset_ids)


def channel_totals(stats):
    """Per-channel totals of hour rows (already filtered to a window), by source then destination.

    Grouped by site ids and named afterwards: grouping and sorting by the site names made
    PostgreSQL sort every hour row by two joined names (95 ms -> 20 ms for 3 weeks of 2,000 channels)."""
    totals = list(
        stats.order_by()
        .values("source_id", "destination_id")
        .annotate(
            files_done=Sum("files_done"),
            bytes_done=Sum("bytes_done"),
            files_failed=Sum("files_failed"),
            seconds=Sum("seconds"),
            hours=Count("id"),
            last_hour=Max("hour"),
        )
    )
    names = dict(
        Site.objects.filter(pk__in={row[key] for row in totals for key in ("source_id", "destination_id")}).values_list(
            "pk", "name"
        )
    )
    last_error = {}
    errors = stats.exclude(last_error="").order_by("-hour").values_list("source_id", "destination_id", "last_error")
    for source_id, destination_id, error in errors:
        last_error.setdefault((source_id, destination_id), error)
    rows = [_channel_row(row, names, last_error) for row in totals]
    return sorted(rows, key=lambda row: (row["source"], row["destination"]))


def _channel_row(row, names, last_error):
    return {
        "source": names[row["source_id"]],
        "destination": names[row["destination_id"]],
        "files_done": row["files_done"],
        "bytes_done": row["bytes_done"],
        "files_failed": row["files_failed"],
        "seconds": row["seconds"],
        "bytes_per_second": rate(row["bytes_done"], row["seconds"]),
        "failure_fraction": fraction(row["files_failed"], row["files_done"] + row["files_failed"]),
        "hours": row["hours"],
        "last_hour": row["last_hour"],
        "last_error": last_error.get((row["source_id"], row["destination_id"]), ""),
    }


def rate(size, seconds):
    return round(size / seconds, 1) if seconds else None


def fraction(part, whole):
    return round(part / whole, 4) if whole else None


THROUGHPUT_FIELDS = {"bytes": "bytes_done", "files": "files_done", "failures": "files_failed"}


def throughput_rows(stats, *, bin_expressions, measure, split):
    """Hour rows summed per time bin and series (destination, source or channel): rows of the bin keys,
    `name` and `n` (bytes, files or failures), for pandamon.plots.series_over_bins."""
    names = {"destination": ("destination__name",), "source": ("source__name",),
             "channel": ("source__name", "destination__name")}[split]  # fmt: skip
    rows = stats.order_by().values(*names, **bin_expressions).annotate(n=Sum(THROUGHPUT_FIELDS[measure]))
    result = []
    for row in rows:
        row["name"] = " → ".join(row[name] for name in names)
        result.append(row)
    return result


def _hour_start(moment):
    return moment.replace(minute=0, second=0, microsecond=0)


def transfer_activity(*, now, worst=WORST_CHANNELS):
    """The home dashboard's transfer block, in five indexed queries: files and bytes done and failed attempts in
    the last hour and day (hour rows from the top of the first hour, like the channels page's hours=1 and 24),
    the queue (partial indexes on the queued and submitted states), the channels failing most in the day and
    how many subscriptions are stuck."""
    since = {1: _hour_start(now - timedelta(hours=1)), 24: _hour_start(now - timedelta(hours=24))}
    day = TransferChannelStat.objects.filter(hour__gte=since[24])
    sums = {}
    for hours, start in since.items():
        within = Q(hour__gte=start)
        sums.update({f"files_{hours}h": Sum("files_done", filter=within, default=0),
                     f"bytes_{hours}h": Sum("bytes_done", filter=within, default=0),
                     f"failures_{hours}h": Sum("files_failed", filter=within, default=0)})  # fmt: skip
    totals = day.aggregate(**sums)
    worst_channels = [
        _renamed(row, source__name="source", destination__name="destination")
        for row in day.values("source__name", "destination__name")
        .annotate(failed=Sum("files_failed"), done=Sum("files_done"))
        .filter(failed__gt=0)
        .order_by("-failed", "source__name", "destination__name")[:worst]
    ]
    for row in worst_channels:
        row["files_failed"], row["files_done"] = row.pop("failed"), row.pop("done")
        row["failure_fraction"] = fraction(row["files_failed"], row["files_failed"] + row["files_done"])
    return {
        "last_hour": {"from": since[1], "files_done": totals["files_1h"], "bytes_done": totals["bytes_1h"],
                      "files_failed": totals["failures_1h"]},
        "last_day": {"from": since[24], "files_done": totals["files_24h"], "bytes_done": totals["bytes_24h"],
                     "files_failed": totals["failures_24h"]},
        "queued": TransferRequest.objects.filter(state=TransferState.QUEUED).count(),
        "submitted": TransferRequest.objects.filter(state=TransferState.SUBMITTED).count(),
        "worst_channels": worst_channels,
        "stuck_subscriptions": Subscription.objects.filter(state=SubscriptionState.STUCK).count(),
    }  # fmt: skip


def site_transfers(*, site_id, window):
    """Transfers into and out of a site: {"in"/"out": {state: n}} (queued and submitted whatever their age, done
    and failed ones that ended in the window, as /transfers/ counts them) and the channel totals of the window's
    hours ({"in"/"out": {files_done, bytes_done, files_failed, seconds, bytes_per_second}})."""
    ended = Q(state__in=ENDED_TRANSFER_STATES, finished_at__gte=window.start)
    if window.end:
        ended &= Q(finished_at__lt=window.end)
    reaches_now = window.end is None or window.end > timezone.now()
    counts = {}
    for direction, column in (("in", "destination_id"), ("out", "source_id")):
        requests = TransferRequest.objects.filter(**{column: site_id})
        counts[direction] = {state: 0 for state in TransferState.values}
        selections = [ended, Q(state__in=LIVE_TRANSFER_STATES)] if reaches_now else [ended]
        for selection in selections:
            counts[direction].update(requests.filter(selection).values_list("state").annotate(n=Count("id")).order_by())
    stats = TransferChannelStat.objects.filter(hour__gte=_hour_start(window.start))
    if window.end:
        stats = stats.filter(hour__lt=window.end)
    throughput = {}
    for direction, column in (("in", "destination_id"), ("out", "source_id")):
        sums = stats.filter(**{column: site_id}).aggregate(
            files_done=Sum("files_done", default=0), bytes_done=Sum("bytes_done", default=0),
            files_failed=Sum("files_failed", default=0), seconds=Sum("seconds", default=0.0),
        )  # fmt: skip
        sums["bytes_per_second"] = rate(sums["bytes_done"], sums["seconds"])
        throughput[direction] = sums
    return counts, throughput


def site_subscription_counts(*, site_id):
    """{state: n} of the subscriptions at a site, every state present (the (site, state) index)."""
    rows = Subscription.objects.filter(site_id=site_id).values_list("state").annotate(n=Count("id")).order_by()
    return {**{state: 0 for state in SubscriptionState.values}, **dict(rows)}


def _subscription_summary(subscription):
    if subscription is None:
        return None
    return {"id": subscription.pk, "site": subscription.site.name, "state": subscription.state,
            "activity": subscription.activity, "reason": subscription.reason}  # fmt: skip


def job_data_flow(*, job, files):
    """Where a job's data is on its way: each dispatch block of its input with how much of it is at the job's site
    and its transfers (dispatch_progress), and each destination dataset of its outputs with how much is at the
    archival Tier-1 (its `archival` subscription's site). `files` are the job's JobFiles."""
    site = job.computing_site
    inputs, outputs = {}, {}
    for item in files:
        if item.type == FileType.INPUT and item.dispatch_dblock:
            inputs[item.dispatch_dblock] = inputs.get(item.dispatch_dblock, 0) + 1
        elif item.type != FileType.INPUT and item.destination_dblock:
            outputs[item.destination_dblock] = outputs.get(item.destination_dblock, 0) + 1
    flow = {"inputs": [], "outputs": []}
    for name, n in sorted(inputs.items()):
        flow["inputs"].append({"block": name, "job_files": n, "site": site.name if site else None,
                               **_block_progress(name, site.pk if site else None)})  # fmt: skip
    for name, n in sorted(outputs.items()):
        subscription = (
            Subscription.objects.filter(dataset__name=name, activity=Activity.ARCHIVAL).select_related("site").first()
        )
        target = subscription.site if subscription else site  # no archival subscription: kept at the job's site
        flow["outputs"].append({"dataset": name, "job_files": n, "site": target.name if target else None,
                                "archival": subscription is not None,
                                **_block_progress(name, target.pk if target else None)})  # fmt: skip
    return flow


def _block_progress(name, site_id):
    found = Dataset.objects.filter(name=name).values("kind", "n_files", "bytes", "erased_at", "archived_at").first()
    if found is None or site_id is None:
        return {"registered": found is not None, "erased": False, "archived_at": None, "progress": None,
                "transfers": None, "last_error": "", "subscription": None}  # fmt: skip
    moving = dispatch_progress(name, site_id)
    replica = DatasetReplica.objects.filter(dataset__name=name, site_id=site_id).values("bytes_present").first()
    return {
        "registered": True, "erased": found["erased_at"] is not None, "archived_at": found["archived_at"],
        "progress": progress(kind=found["kind"], files_wanted=found["n_files"], bytes_wanted=found["bytes"],
                             files_present=moving["present"], bytes_present=replica["bytes_present"] if replica else 0),
        "transfers": {"queued": moving["queued"], "submitted": moving["submitted"], "failed": moving["failed"]},
        "last_error": moving["last_error"], "subscription": _subscription_summary(moving["subscription"]),
    }  # fmt: skip

"""The transfer agent: claims queued requests, copies the files, verifies and registers them.

One pass (`transfer_batch`):
1. requests `submitted` by an agent that went silent longer than the lease (killed,
   host lost) are queued again, so a kill -9 loses nothing;
2. a batch of queued requests is claimed with SELECT ... FOR UPDATE SKIP LOCKED in a
   short transaction (concurrent agents take different rows) and marked submitted;
3. outside any transaction each file is copied from the best source replica by the
   destination site's transfer tools, in order, each attempt under a timeout on its
   own thread (datasets/transfer_tools.py), on a pool of TRANSFER_THREADS;
4. one transaction registers the new replicas (dataset counts, completions,
   callbacks), marks requests done, schedules retries with exponential backoff
   (a source whose bytes were wrong is excluded), fails requests that ran out of
   attempts (their subscriptions become stuck) and adds up the channel statistics.
A file copied but not registered (the agent died between 3 and 4) is found on the
next attempt: the tools accept a destination that already matches.
"""

import logging
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from client.storage import local_path
from pandamon.errors import ServiceError
from sites.models import Site

from .. import transfer_tools
from ..choices import Activity, ReplicaState, TransferState
from ..models import FileReplica, TransferChannelStat, TransferRequest
from . import channels, priorities, relays, subscriptions, user_areas
from .bulk_sql import mark_transfers_done
from .replicas import add_replicas_at, deterministic_pfn

logger = logging.getLogger(__name__)
_pool = None


@dataclass
class Attempt:
    """One claimed request and what became of it."""

    request: TransferRequest
    source: dict | None = None  # the chosen source replica row
    destination_pfn: str = ""
    outcome: transfer_tools.TransferOutcome | None = None
    error: str = ""
    source_suspect: bool = False
    deferred: str = ""  # not attempted (user area full, relayed through a Tier-1): why; no attempt is used up


def _executor():
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=settings.PANDA["TRANSFER_THREADS"], thread_name_prefix="transfer")
    return _pool


def transfer_batch(*, agent, batch=None, now=None):
    """One pass of the agent; returns counts (requeued, claimed, done, retrying, failed)."""
    now = now or timezone.now()
    counts = {"requeued": requeue_abandoned(now)}
    attempts = _claim(agent, batch or settings.PANDA["TRANSFER_BATCH"], now)
    counts["claimed"] = len(attempts)
    if attempts:
        _plan(attempts)
        list(_executor().map(_copy, attempts))
        counts.update(_record(attempts))
    return counts


def requeue_abandoned(now):
    lease = timedelta(seconds=settings.PANDA["TRANSFER_LEASE_SECONDS"])
    return TransferRequest.objects.filter(state=TransferState.SUBMITTED, submitted_at__lt=now - lease).update(
        state=TransferState.QUEUED, agent="", next_attempt_at=now,
        error="the agent copying it went silent (lease expired); queued again",
    )  # fmt: skip


def _claim(agent, batch, now):
    """Claim up to `batch` due requests, activity rank by rank (datasets.services.priorities), each rank by
    priority then age; requests to a paused site wait."""
    groups, paused = priorities.rank_groups(), channels.paused_site_ids()
    with transaction.atomic():
        ids = []
        for activities in groups:
            if len(ids) >= batch:
                break
            ids += list(
                TransferRequest.objects.select_for_update(skip_locked=True)
                .filter(state=TransferState.QUEUED, next_attempt_at__lte=now, activity__in=activities)
                .exclude(destination_id__in=paused)
                .order_by("-priority", "id")
                .values_list("pk", flat=True)[: batch - len(ids)]
            )
        TransferRequest.objects.filter(pk__in=ids).update(
            state=TransferState.SUBMITTED, agent=agent[:100], submitted_at=now, attempts=F("attempts") + 1
        )
    requests = TransferRequest.objects.filter(pk__in=ids).select_related("file", "destination")
    return [Attempt(request) for request in requests.order_by("id")]


# -- choosing sources ----------------------------------------------------------------------------------


def _plan(attempts):
    """Pick each request's source replica: not the destination, not excluded, not behind a paused channel or
    at a paused site; healthy channels first, then same cloud, then tier. When only dead channels (failing, no
    success) lead to the destination the file is relayed through a Tier-1 (datasets.services.channels). User transfers go to
    the site's user area, within its quota (datasets.services.user_areas)."""
    rows = FileReplica.objects.filter(
        file_id__in={a.request.file_id for a in attempts}, state=ReplicaState.AVAILABLE
    ).values(
        "file_id", "site_id", "pfn", "site__cloud_id", "site__tier", "site__name",
        "site__storage_endpoint", "site__storage_http_url",
    )  # fmt: skip
    by_file = defaultdict(list)
    for row in rows:
        by_file[row["file_id"]].append(row)
    route, budget = channels.routing(), user_areas.Budget({a.request.destination_id for a in attempts})
    for attempt in attempts:
        request = attempt.request
        attempt.destination_pfn = _destination_pfn(request, budget)
        candidates = [
            row for row in by_file[request.file_id]
            if row["site_id"] != request.destination_id and row["site_id"] not in request.excluded_sources
            and route.usable(row["site_id"], request.destination_id)
        ]  # fmt: skip
        candidates.sort(key=lambda row: (route.failing(row["site_id"], request.destination_id),
                                         row["site__cloud_id"] != request.destination.cloud_id, row["site__tier"],
                                         row["site__name"]))  # fmt: skip
        attempt.source = candidates[0] if candidates else None
        if attempt.source is not None and route.dead(attempt.source["site_id"], request.destination_id):
            relays.relay(attempt, route)
        if attempt.source is not None and request.activity == Activity.USER and budget.has_area(request.destination):
            attempt.deferred = budget.take(request.destination, request.file.fsize)
            attempt.source = None if attempt.deferred else attempt.source


def _destination_pfn(request, budget):
    site = request.destination
    if not site.storage_endpoint:
        return ""
    if request.activity == Activity.USER and budget.has_area(site):
        return user_areas.user_area_pfn(site, request.file.lfn)
    return deterministic_pfn(site, request.file.lfn)


def _path_of(location):
    """A directory PFN as a plain path string (client.storage.local_path reads file:// URLs)."""
    return str(local_path(location)) if location else ""


def source_urls(row):
    """The ways to read one replica: its PFN, and the same path through the site's HTTP door if it has one."""
    pfn = row["pfn"]
    urls = [pfn]
    endpoint = _path_of(row["site__storage_endpoint"] or "").rstrip("/")
    door = (row["site__storage_http_url"] or "").rstrip("/")
    if door and endpoint and _path_of(pfn).startswith(endpoint + "/"):
        urls.append(door + _path_of(pfn)[len(endpoint) :])
    return tuple(urls)


# -- copying (worker threads; no database access here) --------------------------------------------------


def _copy(attempt):
    request = attempt.request
    if attempt.deferred:
        return
    if not attempt.destination_pfn:
        attempt.error = f"site {request.destination.name} has no storage endpoint"
        return
    if attempt.source is None:
        attempt.error = f"no usable replica of {request.file.lfn} at another site"
        return
    transfer = transfer_tools.FileTransfer(
        lfn=request.file.lfn, fsize=request.file.fsize, adler32=request.file.adler32,
        sources=source_urls(attempt.source), destination=attempt.destination_pfn,
    )  # fmt: skip
    try:
        tools = transfer_tools.parse_tool_list(request.destination.transfer_tools)
        attempt.outcome = transfer_tools.transfer_file(
            transfer, tools, timeout=settings.PANDA["TRANSFER_TIMEOUT_SECONDS"]
        )
    except transfer_tools.TransferFailed as exc:
        attempt.error, attempt.source_suspect = str(exc), exc.source_suspect
    except ValueError as exc:  # the site's tool list names an unknown tool
        attempt.error = f"site {request.destination.name}: {exc}"
    except Exception as exc:  # a tool bug must not lose the batch's other results
        logger.exception("transfer of %s failed unexpectedly", request.file.lfn)
        attempt.error = f"{type(exc).__name__}: {exc}"


# -- recording -----------------------------------------------------------------------------------------


def _record(attempts):
    now = timezone.now()
    counts = {"done": 0, "retrying": 0, "failed": 0, "deferred": 0}
    deferred = [a for a in attempts if a.deferred]
    attempts = [a for a in attempts if not a.deferred]
    with transaction.atomic():
        _defer(deferred, now, counts)
        done = [a for a in attempts if a.outcome is not None]
        refused = _register(done, now)
        for attempt in done:
            if attempt.request.pk in refused:
                attempt.outcome, attempt.error = None, refused[attempt.request.pk]
        _mark_done([a for a in attempts if a.outcome is not None], now, counts)
        _mark_failed([a for a in attempts if a.outcome is None], now, counts)
        _add_channel_stats(attempts, now)
    return counts


def _defer(attempts, now, counts):
    """Requests not attempted (user area full, relayed through a Tier-1): queued again, no attempt used."""
    for attempt in attempts:
        wait = relays.RELAY_WAIT if attempt.deferred.startswith("rerouted") else user_areas.USER_AREA_WAIT
        TransferRequest.objects.filter(pk=attempt.request.pk).update(
            state=TransferState.QUEUED, agent="", attempts=F("attempts") - 1, error=attempt.deferred[:500],
            next_attempt_at=now + wait,
        )  # fmt: skip
    counts["deferred"] += len(attempts)


def _register(done, now):
    """Register the copied files at their destinations; returns {request id: error} for refused ones."""
    by_site = defaultdict(list)
    for attempt in done:
        by_site[attempt.request.destination_id].append(attempt)
    refused = {}
    # Sites locked in id order: registrations at a site are serialised on its row (datasets.services.replicas).
    for site in Site.objects.select_for_update().filter(pk__in=list(by_site)).order_by("pk"):
        group = by_site[site.pk]
        try:
            with transaction.atomic():
                add_replicas_at(site, {a.request.file_id: a.destination_pfn for a in group}, secondary=True)
                area = user_areas.user_area_root(site) + "/" if site.storage_endpoint else None
                user_copies = [a for a in group if area and a.destination_pfn.startswith(area)]
                if user_copies:
                    user_areas.note_copied({site.pk: sum(a.outcome.size for a in user_copies)})
        except ServiceError as exc:  # a replica check (storage quota) refused the files
            _remove_copies(group)
            refused.update({a.request.pk: f"refused at {site.name}: {exc.message}" for a in group})
    return refused


def _remove_copies(group):
    for attempt in group:
        path = _path_of(attempt.destination_pfn)
        if not path.startswith(("http://", "https://")):
            try:
                os.remove(path)
            except OSError:
                pass


def _mark_done(attempts, now, counts):
    for attempt in attempts:
        request = attempt.request
        request.source_id, request.tool = attempt.source["site_id"], attempt.outcome.tool
        request.seconds, request.bytes = attempt.outcome.seconds, attempt.outcome.size
    mark_transfers_done([a.request for a in attempts], now)
    counts["done"] += len(attempts)


def _mark_failed(attempts, now, counts):
    final_by_site = defaultdict(list)
    for attempt in attempts:
        request = attempt.request
        request.error, request.agent = attempt.error[:500], ""
        if attempt.source is not None:
            request.source_id = attempt.source["site_id"]
            if attempt.source_suspect:
                request.excluded_sources = [*request.excluded_sources, attempt.source["site_id"]]
        if request.attempts < settings.PANDA["TRANSFER_MAX_ATTEMPTS"]:
            request.state, request.next_attempt_at = TransferState.QUEUED, now + _backoff(request.attempts)
            counts["retrying"] += 1
        else:
            request.state, request.finished_at = TransferState.FAILED, now
            final_by_site[request.destination].append(request.file_id)
            counts["failed"] += 1
    TransferRequest.objects.bulk_update(
        [a.request for a in attempts],
        ["state", "error", "agent", "source", "excluded_sources", "next_attempt_at", "finished_at"],
        batch_size=500,
    )
    for site, file_ids in final_by_site.items():
        subscriptions.stick_subscriptions(site, file_ids, now)


def _backoff(attempts):
    delay = settings.PANDA["TRANSFER_RETRY_SECONDS"] * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(delay, 3600))


def _add_channel_stats(attempts, now):
    hour = now.replace(minute=0, second=0, microsecond=0)
    totals = defaultdict(lambda: {"files_done": 0, "bytes_done": 0, "files_failed": 0, "seconds": 0.0, "error": ""})
    for attempt in attempts:
        if attempt.source is None:
            continue
        total = totals[(attempt.source["site_id"], attempt.request.destination_id)]
        if attempt.outcome is not None:
            total["files_done"] += 1
            total["bytes_done"] += attempt.outcome.size
            total["seconds"] += attempt.outcome.seconds
        else:
            total["files_failed"] += 1
            total["error"] = attempt.error
    for (source_id, destination_id), total in totals.items():
        _add_to_channel(hour, source_id, destination_id, total)


def _add_to_channel(hour, source_id, destination_id, total):
    increments = {
        "files_done": F("files_done") + total["files_done"], "bytes_done": F("bytes_done") + total["bytes_done"],
        "files_failed": F("files_failed") + total["files_failed"], "seconds": F("seconds") + total["seconds"],
    }  # fmt: skip
    if total["error"]:
        increments["last_error"] = total["error"][:500]
    row = TransferChannelStat.objects.filter(hour=hour, source_id=source_id, destination_id=destination_id)
    if row.update(**increments):
        return
    try:
        with transaction.atomic():
            TransferChannelStat.objects.create(
                hour=hour, source_id=source_id, destination_id=destination_id, files_done=total["files_done"],
                bytes_done=total["bytes_done"], files_failed=total["files_failed"], seconds=total["seconds"],
                last_error=total["error"][:500],
            )  # fmt: skip
    except IntegrityError:  # another agent created the hour's row first
        row.update(**increments)


def pending_now():
    """True while requests are queued and due, or held by an agent."""
    now = timezone.now()
    return TransferRequest.objects.filter(state=TransferState.QUEUED, next_attempt_at__lte=now).exists() or (
        TransferRequest.objects.filter(state=TransferState.SUBMITTED).exists()
    )

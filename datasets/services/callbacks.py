"""Callbacks on complete dataset replicas.

A callback is registered on (dataset, site) and fires once, when the site's
replica of the dataset is complete (at once if it already is). Two kinds are the
PanDA data flow and run inside the transaction that completed the replica, so a
job is never left waiting for an event that was lost: `activate_jobs` (the
Activator) and `archive` (the Finisher); their handlers belong to the jobs app,
which registers them here (the catalog does not import the layers above it).
`http` callbacks, registered by users, are POSTed after commit by a Celery task
and retried with exponential backoff.
"""

import ipaddress
import json
import logging
import socket
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from pandamon.errors import Conflict, InvalidInput, NotFound

from ..choices import CallbackKind, CallbackState
from ..models import Dataset, DatasetReplica, ReplicaCallback

logger = logging.getLogger(__name__)
HTTP_TIMEOUT = 10
_handlers = {}


def register_handler(kind, handler):
    """`handler(dataset, site, now)` runs in the completing transaction for callbacks of `kind`."""
    _handlers[kind] = handler


def register_callback(*, dataset, site, kind, owner_name, owner=None, url=""):
    """Add a callback; one already complete replica fires it at once. Returns the callback."""
    if kind == CallbackKind.HTTP:
        _check_url(url)
    callback = ReplicaCallback.objects.create(
        dataset=dataset, site=site, kind=kind, url=url, owner=owner, owner_name=owner_name[:150]
    )
    if DatasetReplica.objects.filter(dataset=dataset, site=site, complete_at__isnull=False).exists():
        _fire([callback], timezone.now())
    return callback


def register_callbacks(pairs, *, kind, owner_name):
    """`register_callback` for many (dataset, site) pairs of the PanDA data flow (not http) in one INSERT.

    Replicas already complete fire their callbacks at once, as one by one.
    """
    if kind == CallbackKind.HTTP:
        raise InvalidInput("http callbacks are registered one by one (their URL is checked)")
    if not pairs:
        return []
    created = ReplicaCallback.objects.bulk_create(
        [ReplicaCallback(dataset=dataset, site=site, kind=kind, owner_name=owner_name[:150]) for dataset, site in pairs]
    )
    complete = set(
        DatasetReplica.objects.filter(
            dataset_id__in={dataset.pk for dataset, _ in pairs}, complete_at__isnull=False
        ).values_list("dataset_id", "site_id")
    )  # fmt: skip
    due = [callback for callback in created if (callback.dataset_id, callback.site_id) in complete]
    if due:
        _fire(due, timezone.now())
    return created


def register_user_callback(*, user, name, site_name, url):
    """A user's HTTP callback on one of the datasets' replicas."""
    from sites.models import Site

    dataset = Dataset.objects.filter(name=name, erased_at__isnull=True).first()
    if dataset is None:
        raise NotFound(f"no dataset named {name}")
    site = Site.objects.filter(name=site_name).first()
    if site is None:
        raise NotFound(f"unknown site '{site_name}'")
    limit = settings.PANDA["CALLBACKS_PER_USER"]
    if (
        ReplicaCallback.objects.filter(owner=user, state__in=(CallbackState.WAITING, CallbackState.DUE)).count()
        >= limit
    ):
        raise Conflict(
            f"you have {limit} callbacks waiting or being delivered, the most allowed; wait for them to fire"
        )
    with transaction.atomic():
        return register_callback(
            dataset=dataset, site=site, kind=CallbackKind.HTTP, url=url, owner=user, owner_name=user.username
        )


def _check_url(url):
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 500:
        raise InvalidInput("url: give an http:// or https:// URL of at most 500 characters")
    host = urllib.parse.urlsplit(url).hostname
    if not host:
        raise InvalidInput("url: the URL names no host")
    if not settings.PANDA["CALLBACK_ALLOW_PRIVATE"] and _is_internal(host):
        raise InvalidInput(f"url: {host} is a loopback, private or link-local address; callbacks go to public hosts")


def _is_internal(host):
    """True when `host` is or resolves to an address inside the server's own networks."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        raise InvalidInput(f"url: cannot resolve host {host}") from None
    return any(_internal_address(address) for address in addresses)


def _internal_address(address):
    ip = ipaddress.ip_address(address.split("%")[0])
    return ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_reserved or ip.is_unspecified


def fire_waiting(site, dataset_ids, now):
    """The replicas of these datasets at `site` just became complete: fire their waiting callbacks."""
    waiting = list(
        ReplicaCallback.objects.select_for_update()
        .filter(site=site, dataset_id__in=dataset_ids, state=CallbackState.WAITING)
        .select_related("dataset", "site")
    )
    _fire(waiting, now)


def _fire(callbacks, now):
    posts = []
    for callback in callbacks:
        callback.fired_at = now
        if callback.kind == CallbackKind.HTTP:
            callback.state, callback.next_attempt_at = CallbackState.DUE, now
            posts.append(callback.pk)
            continue
        handler = _handlers.get(callback.kind)
        if handler is None:
            callback.state, callback.last_error = CallbackState.FAILED, f"no handler for {callback.kind} callbacks"
            continue
        handler(callback.dataset, callback.site, now)
        callback.state, callback.delivered_at = CallbackState.DONE, now
    ReplicaCallback.objects.bulk_update(
        callbacks, ["state", "fired_at", "next_attempt_at", "delivered_at", "last_error"]
    )
    if posts:
        transaction.on_commit(_queue_delivery)


def _queue_delivery():
    from ..tasks import deliver_callbacks

    deliver_callbacks.delay()


def deliver_due_callbacks(*, batch=100, now=None):
    """POST due http callbacks; returns counts. Safe to run concurrently: each is claimed first."""
    now = now or timezone.now()
    claimed = _claim_due(batch, now)
    counts = {"delivered": 0, "retrying": 0, "failed": 0}
    for callback in claimed:
        error = _post(callback)
        counts[_record_delivery(callback, error)] += 1
    return counts


def _claim_due(batch, now):
    """Take due callbacks, pushing their next attempt past the HTTP timeout so no other worker takes them."""
    with transaction.atomic():
        claimed = list(
            ReplicaCallback.objects.select_for_update(skip_locked=True)
            .filter(Q(next_attempt_at__lte=now) | Q(next_attempt_at__isnull=True), state=CallbackState.DUE)
            .select_related("dataset", "site")
            .order_by("next_attempt_at")[:batch]
        )
        ReplicaCallback.objects.filter(pk__in=[c.pk for c in claimed]).update(
            next_attempt_at=now + timedelta(seconds=4 * HTTP_TIMEOUT)
        )
    return claimed


def _post(callback):
    """None when the URL answered 2xx, else the error."""
    replica = DatasetReplica.objects.filter(dataset=callback.dataset, site=callback.site).first()
    body = {
        "event": "replica_complete", "callback_id": callback.pk, "dataset": callback.dataset.name,
        "site": callback.site.name, "files": replica.files_present if replica else 0,
        "bytes": replica.bytes_present if replica else 0, "completed_at": callback.fired_at.isoformat(),
    }  # fmt: skip
    request = urllib.request.Request(
        callback.url, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "pandamon-callback"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT):
            return None
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {exc.reason}"
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"


def _record_delivery(callback, error):
    now = timezone.now()
    attempts = callback.attempts + 1
    fields = {"attempts": attempts, "last_error": (error or "")[:500]}
    if error is None:
        fields.update(state=CallbackState.DONE, delivered_at=now, next_attempt_at=None)
        outcome = "delivered"
    elif attempts >= settings.PANDA["CALLBACK_MAX_ATTEMPTS"]:
        fields.update(state=CallbackState.FAILED, next_attempt_at=None)
        outcome = "failed"
    else:
        delay = settings.PANDA["CALLBACK_RETRY_SECONDS"] * 2 ** (attempts - 1)
        fields["next_attempt_at"] = now + timedelta(seconds=min(delay, 6 * 3600))
        outcome = "retrying"
    if error:
        logger.warning("callback %s to %s: %s (attempt %d)", callback.pk, callback.url, error, attempts)
    ReplicaCallback.objects.filter(pk=callback.pk, state=CallbackState.DUE).update(**fields)
    return outcome

"""Relaying a file through a Tier-1 when every channel from its replicas to the destination is dead.

The transfer agent calls `relay` for a request whose best source is behind a dead channel (failing,
and no attempt in the window succeeded).
A Tier-1 (the destination cloud's first, then the others by name) that is not paused, has
storage, and whose channels from the source and to the destination are not failing gets a
transfer of the file (same activity and priority); the request itself waits RELAY_WAIT without
using an attempt and, once the copy is at the Tier-1, takes it from there (a healthy channel).
With no such Tier-1 the failing channel is tried all the same (it may recover).
"""

from datetime import timedelta

from django.utils import timezone

from sites.models import Site

from ..models import TransferRequest

RELAY_WAIT = timedelta(minutes=2)


def relay(attempt, route):
    """Queue the relay copy and defer the request; leaves the attempt alone when no Tier-1 can relay."""
    request, source_id = attempt.request, attempt.source["site_id"]
    via = _relay_site(request, source_id, route)
    if via is None:
        return
    now = timezone.now()
    TransferRequest.objects.bulk_create(
        [TransferRequest(file_id=request.file_id, destination=via, activity=request.activity, priority=request.priority,
                         bytes=request.file.fsize, requested_at=now, next_attempt_at=now)],
        ignore_conflicts=True,
    )  # fmt: skip
    attempt.deferred = (
        f"rerouted: channel {attempt.source['site__name']}->{request.destination.name} is failing (no success); "
        f"relayed through the Tier-1 {via.name}"
    )
    attempt.source = None


def _relay_site(request, source_id, route):
    destination = request.destination
    tier1s = Site.objects.filter(tier__lte=1).exclude(storage_endpoint="").exclude(pk__in=[source_id, destination.pk])
    ordered = sorted(tier1s.select_related("cloud"), key=lambda s: (s.cloud_id != destination.cloud_id, s.name))
    for site in ordered:
        legs = ((source_id, site.pk), (site.pk, destination.pk))
        if all(route.usable(*leg) and not route.failing(*leg) for leg in legs):
            return site
    return None

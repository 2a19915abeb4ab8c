"""Channel health, pauses and rerouting.

A channel is a source site -> destination site. Its health comes from the hourly channel
statistics over the alarm window (PANDA_ALARMS CHANNEL_WINDOW_HOURS, CHANNEL_MIN_ATTEMPTS,
CHANNEL_FAILED_SHARE: the same test as the channel-failures alarm): failing when at least the
minimum number of attempts were made and the failed share reached the threshold; dead when, on
top of that, none succeeded. The transfer agent reads `routing()` once per batch: a source replica
behind a paused channel (or at a paused site) is never used, one behind a failing channel only
when no healthy source holds the file; when the only channels left are dead the file is relayed
through a Tier-1 whose channels are healthy (a copy through a merely failing channel may still
work, and relaying costs a second transfer).
"""

from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from pandamon.errors import InvalidInput, NotFound
from sites.models import Site

from ..models import ChannelControl, SiteDDMConfig, TransferChannelStat
from ..policy_choices import ChannelHealth
from .policy_admin import check_operator


def paused_site_ids():
    return set(SiteDDMConfig.objects.filter(paused=True).values_list("site_id", flat=True))


def window_start(now):
    hours = settings.PANDA_ALARMS["CHANNEL_WINDOW_HOURS"]
    return (now - timedelta(hours=hours)).replace(minute=0, second=0, microsecond=0)


def channel_sums(now):
    """{(source id, destination id): (files done, failed attempts)} over the health window."""
    rows = (
        TransferChannelStat.objects.filter(hour__gte=window_start(now))
        .values_list("source_id", "destination_id")
        .annotate(done=Sum("files_done"), failed=Sum("files_failed"))
        .order_by()
    )
    return {(source, destination): (done, failed) for source, destination, done, failed in rows}


def health_of(done, failed):
    limits = settings.PANDA_ALARMS
    attempts = done + failed
    if attempts < limits["CHANNEL_MIN_ATTEMPTS"]:
        return ChannelHealth.QUIET
    return ChannelHealth.FAILING if failed >= limits["CHANNEL_FAILED_SHARE"] * attempts else ChannelHealth.HEALTHY


@dataclass
class Routing:
    """What the transfer agent needs to choose sources, read once per batch."""

    paused_sites: set = field(default_factory=set)
    paused_channels: set = field(default_factory=set)
    failing_channels: set = field(default_factory=set)
    dead_channels: set = field(default_factory=set)

    def usable(self, source_id, destination_id):
        return (
            source_id not in self.paused_sites
            and destination_id not in self.paused_sites
            and (source_id, destination_id) not in self.paused_channels
        )

    def failing(self, source_id, destination_id):
        return (source_id, destination_id) in self.failing_channels

    def dead(self, source_id, destination_id):
        return (source_id, destination_id) in self.dead_channels


def routing(now=None):
    now = now or timezone.now()
    sums = channel_sums(now)
    failing = {key for key, (done, failed) in sums.items() if health_of(done, failed) == ChannelHealth.FAILING}
    paused = set(ChannelControl.objects.filter(paused=True).values_list("source_id", "destination_id"))
    return Routing(paused_sites=paused_site_ids(), paused_channels=paused, failing_channels=failing,
                   dead_channels={key for key in failing if not sums[key][0]})  # fmt: skip


# -- operator actions ----------------------------------------------------------------------------


def _site(name):
    site = Site.objects.filter(name=name).first()
    if site is None:
        raise NotFound(f"unknown site '{name}'")
    return site


def _reason(reason):
    if not isinstance(reason, str) or len(reason) > 300:
        raise InvalidInput("reason: text of at most 300 characters")
    return reason


@transaction.atomic
def set_channel_paused(*, user, source, destination, paused, reason=""):
    """Pause (or resume) a channel: no transfer uses a source at `source` for `destination` while paused."""
    check_operator(user, "pause or resume channels")
    reason = _reason(reason)
    source_site, destination_site = _site(source), _site(destination)
    if source_site.pk == destination_site.pk:
        raise InvalidInput("a channel joins two different sites")
    control, _ = ChannelControl.objects.update_or_create(
        source=source_site, destination=destination_site,
        defaults={"paused": paused, "reason": reason, "changed_by": user.username, "changed_at": timezone.now()},
    )  # fmt: skip
    return control


@transaction.atomic
def set_site_paused(*, user, site_name, paused, reason=""):
    """Pause (or resume) a site: no transfer to or from it, and placement rules leave it out."""
    check_operator(user, "pause or resume sites")
    reason = _reason(reason)
    site = _site(site_name)
    config, _ = SiteDDMConfig.objects.get_or_create(site=site)
    config.paused, config.paused_reason = paused, reason if paused else ""
    config.paused_by, config.paused_at = user.username, timezone.now()
    config.save(update_fields=["paused", "paused_reason", "paused_by", "paused_at"])
    return config

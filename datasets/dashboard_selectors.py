"""The DDM operations dashboard: data volume per cloud and tier (disk, tape), transfers per channel, stuck
subscriptions with their reasons, datasets incomplete at their destinations, pending deletions.

Each block is one or two GROUP BY queries over indexed, bounded sets; the tier and media of a site come
from datasets.services.topology (sites.Site has neither), folded in Python over the per-site sums."""

from datetime import timedelta

from django.db.models import Count, F, Q, Sum

from .choices import SubscriptionState
from .flow_selectors import channel_totals, progress, subscription_rows
from .models import DatasetReplica, DeletionProposal, SiteReplicaTotals, Subscription, TransferChannelStat
from .policy_choices import ProposalState
from .services.deletion import SYSTEM_CATEGORIES
from .services.topology import Topology

SHOWN = 20


def tier_label(topology, site):
    if site.tier == 0:
        return "Tier-0"
    return "Tier-1" if topology.is_tier1_endpoint(site) else "Tier-2"


def volume(topology=None):
    """[{cloud, tier, media, replicas, files, bytes}] by cloud, tier and media: the dataset replicas, and the
    files and bytes stored (each file once per site, though several datasets may hold it); and the totals
    per (tier, media)."""
    topology = topology or Topology()
    sites = {site.pk: site for site in topology.sites}
    replicas = dict(DatasetReplica.objects.values_list("site_id").annotate(n=Count("id")).order_by())
    stored = {row[0]: row[1:] for row in SiteReplicaTotals.objects.values_list("site_id", "files", "bytes")}
    per_site = [
        (site_id, replicas.get(site_id, 0), *stored.get(site_id, (0, 0))) for site_id in replicas.keys() | stored
    ]
    cells = {}
    for site_id, n, files, size in per_site:
        site = sites[site_id]
        key = (site.cloud.name, tier_label(topology, site), topology.media(site))
        cell = cells.setdefault(key, {"cloud": key[0], "tier": key[1], "media": key[2], "replicas": 0, "files": 0,
                                      "bytes": 0})  # fmt: skip
        cell["replicas"] += n
        cell["files"] += files or 0
        cell["bytes"] += size or 0
    rows = sorted(cells.values(), key=lambda c: (c["cloud"], c["tier"], c["media"]))
    totals = {}
    for row in rows:
        total = totals.setdefault((row["tier"], row["media"]), {"tier": row["tier"], "media": row["media"],
                                                                "replicas": 0, "files": 0, "bytes": 0})  # fmt: skip
        for name in ("replicas", "files", "bytes"):
            total[name] += row[name]
    return {"rows": rows, "totals": sorted(totals.values(), key=lambda t: (t["tier"], t["media"]))}


def channels(now, hours=24, shown=SHOWN):
    since = (now - timedelta(hours=hours)).replace(minute=0, second=0, microsecond=0)
    totals = channel_totals(TransferChannelStat.objects.filter(hour__gte=since))
    totals.sort(key=lambda c: (-(c["files_done"] + c["files_failed"]), c["source"], c["destination"]))
    return {"from": since, "n_channels": len(totals), "rows": totals[:shown]}


def stuck(shown=SHOWN):
    stuck_ones = Subscription.objects.filter(state=SubscriptionState.STUCK)
    rows = list(
        stuck_ones.order_by("stuck_at", "id").values("id", "dataset__name", "site__name", "activity", "stuck_at",
                                                      "reason")[:shown]
    )  # fmt: skip
    return {"total": stuck_ones.count(), "rows": rows}


def incomplete(shown=SHOWN):
    """Subscriptions still moving data (active or stuck) of datasets their site does not fully hold."""
    wanted = (
        subscription_rows()
        .filter(state__in=(SubscriptionState.ACTIVE, SubscriptionState.STUCK))
        .exclude(dataset__kind="container")
        .filter(Q(files_present__isnull=True) | Q(files_present__lt=F("dataset__n_files")))
    )
    rows = [
        {"id": s.pk, "dataset": s.dataset.name, "site": s.site.name, "state": s.state, "activity": s.activity,
         "share": None if (s.share_start, s.share_end) == (0, 1000) else [s.share_start, s.share_end],
         "progress": progress(kind=s.dataset.kind, files_wanted=s.dataset.n_files, bytes_wanted=s.dataset.bytes,
                              files_present=s.files_present, bytes_present=s.bytes_present)}
        for s in wanted.order_by("created_at", "id")[:shown]
    ]  # fmt: skip
    return {"total": wanted.count(), "rows": rows}


def pending_deletions(now):
    by_state = {
        state: {"n": n, "bytes": size or 0}
        for state, n, size in DeletionProposal.objects.filter(state__in=(ProposalState.PROPOSED, ProposalState.APPROVED))
        .values_list("state").annotate(n=Count("id"), size=Sum("bytes")).order_by()
    }  # fmt: skip
    empty = {"n": 0, "bytes": 0}
    system = DatasetReplica.objects.filter(expires_at__lt=now, dataset__category__in=SYSTEM_CATEGORIES)
    return {"proposed": by_state.get(ProposalState.PROPOSED, empty),
            "approved": by_state.get(ProposalState.APPROVED, empty),
            "system_expired": system.count()}  # fmt: skip


def dashboard(now):
    return {"volume": volume(), "channels": channels(now), "stuck": stuck(), "incomplete": incomplete(),
            "deletions": pending_deletions(now), "generated_at": now}  # fmt: skip

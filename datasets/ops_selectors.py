"""Reads of DDM operations: the queue by activity, user areas, channel health, deletions, the dashboard."""

from datetime import timedelta

from django.db.models import Count, Min, Q, Sum

from .choices import Activity, TransferState
from .flow_selectors import fraction, rate
from .models import ChannelControl, SiteDDMConfig, TransferChannelStat, TransferRequest
from .services import channels, priorities
from .services.user_areas import USER_AREA_WAIT

LIVE = (TransferState.QUEUED, TransferState.SUBMITTED)


def activity_queue(now):
    """Per activity, in claim order: its rank, the queue (queued, submitted, bytes, oldest) and the last day's
    done and failed transfers."""
    ranks = priorities.ranks()
    live = {
        row["activity"]: row
        for row in TransferRequest.objects.filter(state__in=LIVE).values("activity").annotate(
            queued=Count("id", filter=Q(state=TransferState.QUEUED)),
            submitted=Count("id", filter=Q(state=TransferState.SUBMITTED)),
            queued_bytes=Sum("bytes", filter=Q(state=TransferState.QUEUED), default=0),
            oldest=Min("requested_at", filter=Q(state=TransferState.QUEUED)),
        ).order_by()
    }  # fmt: skip
    ended = {
        row["activity"]: row
        for row in TransferRequest.objects.filter(finished_at__gte=now - timedelta(days=1)).values("activity")
        .annotate(done=Count("id", filter=Q(state=TransferState.DONE)),
                  failed=Count("id", filter=Q(state=TransferState.FAILED))).order_by()
    }  # fmt: skip
    rows = []
    for activity in sorted(Activity.values, key=lambda a: (ranks[a], a)):
        row = live.get(activity, {})
        rows.append({
            "activity": activity, "label": Activity(activity).label, "rank": ranks[activity],
            "default_rank": priorities.DEFAULT_RANKS[activity], "queued": row.get("queued", 0),
            "submitted": row.get("submitted", 0), "queued_bytes": row.get("queued_bytes", 0),
            "oldest_queued": row.get("oldest"), "done_24h": ended.get(activity, {}).get("done", 0),
            "failed_24h": ended.get(activity, {}).get("failed", 0),
        })  # fmt: skip
    return rows


def user_area_rows():
    """Sites whose user area is sized or used: quota, usage, % and user transfers waiting for room."""
    waiting = dict(
        TransferRequest.objects.filter(state=TransferState.QUEUED, activity=Activity.USER,
                                       error__startswith="user area")
        .values_list("destination_id").annotate(n=Count("id")).order_by()
    )  # fmt: skip
    configs = SiteDDMConfig.objects.filter(Q(user_area_quota_bytes__isnull=False) | Q(user_area_used_bytes__gt=0))
    return [
        {"site": c.site.name, "quota_bytes": c.user_area_quota_bytes, "used_bytes": c.user_area_used_bytes,
         "pct": round(100 * c.user_area_used_bytes / c.user_area_quota_bytes, 1) if c.user_area_quota_bytes else None,
         "waiting_for_room": waiting.get(c.site_id, 0), "counted_at": c.user_area_counted_at}
        for c in configs.select_related("site").order_by("site__name")
    ]  # fmt: skip


def channel_health(now):
    """Every channel with traffic in the health window or an operator's pause: its numbers and health."""
    start = channels.window_start(now)
    sums = (
        TransferChannelStat.objects.filter(hour__gte=start)
        .values("source__name", "destination__name")
        .annotate(done=Sum("files_done"), failed=Sum("files_failed"), size=Sum("bytes_done"), seconds=Sum("seconds"))
        .order_by("source__name", "destination__name")
    )
    rows = {}
    for row in sums:
        key = (row["source__name"], row["destination__name"])
        rows[key] = {"source": key[0], "destination": key[1], "files_done": row["done"], "files_failed": row["failed"],
                     "bytes_done": row["size"], "bytes_per_second": rate(row["size"], row["seconds"]),
                     "failure_fraction": fraction(row["failed"], row["done"] + row["failed"]),
                     "health": channels.health_of(row["done"], row["failed"]), "paused": None}  # fmt: skip
    for control in ChannelControl.objects.select_related("source", "destination"):
        key = (control.source.name, control.destination.name)
        row = rows.setdefault(key, {"source": key[0], "destination": key[1], "files_done": 0, "files_failed": 0,
                                    "bytes_done": 0, "bytes_per_second": None, "failure_fraction": None,
                                    "health": "quiet"})  # fmt: skip
        row["paused"] = {"paused": control.paused, "reason": control.reason, "by": control.changed_by,
                         "at": control.changed_at}  # fmt: skip
        if control.paused:
            row["health"] = "paused"
    order = {"paused": 0, "failing": 1, "healthy": 2, "quiet": 3}
    return {"from": start, "rows": sorted(rows.values(), key=lambda r: (order[r["health"]], r["source"],
                                                                           r["destination"]))}  # fmt: skip


def paused_sites():
    return list(
        SiteDDMConfig.objects.filter(paused=True).order_by("site__name")
        .values("site__name", "paused_reason", "paused_by", "paused_at")
    )  # fmt: skip


def rerouted_now():
    """Queued requests waiting for a relay through a Tier-1, or for room in a user area."""
    queued = TransferRequest.objects.filter(state=TransferState.QUEUED)
    return {"relayed": queued.filter(error__startswith="rerouted").count(),
            "user_area_full": queued.filter(error__startswith="user area").count(),
            "user_area_wait_s": USER_AREA_WAIT.total_seconds()}  # fmt: skip

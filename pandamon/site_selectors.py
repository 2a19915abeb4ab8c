"""Reads that combine sites with jobs and data: the site list, a site's page and its worker nodes.

Every job query is bounded so the pages stay fast with millions of jobs:
- jobs in a queued or active state are the working set (small, and indexed by status), counted whatever their age;
- jobs in a final state are counted only inside a time window on modification_time, the column
  the jobs list's window uses, so a count and the list its link opens select the same jobs.
"""

from collections import Counter, defaultdict
from datetime import timedelta

from django.db.models import Count, Max, Q
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from datasets.models import FileReplica, SiteReplicaTotals
from jobs.choices import LIVE_STATES, JobStatus
from jobs.models import Job
from jobs.selectors import live_and_recent_counts
from sites.models import StorageSpace

# Table order: the states in the order a job goes through them.
ACTIVE_STATES = LIVE_STATES
FINAL_STATE_ORDER = (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.CLOSED)
ALL_STATES = ACTIVE_STATES + FINAL_STATE_ORDER

RECENT_FILES = 50
# A node is suspect ("black hole") when enough of its jobs ended and it fails far more than its site.
SUSPECT_MIN_FAILED = 5
SUSPECT_MIN_RATE = 50.0
SUSPECT_MARGIN = 25.0  # percentage points above the site's failure rate


def count_in(state):
    """COUNT of the jobs in `state`. Counts here are COUNT(*) or COUNT(status), never COUNT(pandaid):
    the primary key is not in the (status, site, time) index, so counting it makes PostgreSQL read
    the table where the index alone would answer (Django refuses COUNT(*) with a filter)."""
    return Count("status", filter=Q(status=state))


# ---------------------------------------------------------------- site list


def job_counts_by_site(*, window, site_ids):
    """{site_id: {state: n}}: queued/active jobs whatever their age, final ones modified in the window."""
    counts = defaultdict(Counter)
    for (site_id, _cloud), cell in live_and_recent_counts(final_window=window.q(), site_ids=site_ids).items():
        counts[site_id].update(cell)
    return {site_id: dict(cell) for site_id, cell in counts.items()}


def storage_by_site(*, site_ids):
    """{site_id: bytes} of the files the site holds by its replica catalog, each file once (a file
    in two datasets is stored once): the totals the catalog keeps per site."""
    return dict(SiteReplicaTotals.objects.filter(site_id__in=site_ids).values_list("site_id", "bytes"))


# ---------------------------------------------------------------- one site


def storage_space(site):
    """The site storage's last space report as a dict (None when it never reported)."""
    report = StorageSpace.objects.filter(site=site).first()
    if report is None:
        return None
    return {"used_bytes": report.used_bytes, "free_bytes": report.free_bytes, "total_bytes": report.total_bytes,
            "reported_at": report.reported_at, "reported_by": report.reported_by}  # fmt: skip


def site_activity(*, site, window):
    """Jobs that reached a final state in the window, per hour (per day for windows over 3 days).

    [{"at": bucket start, "counts": {state: n}, "total": n}], oldest first, empty buckets included."""
    by_day = activity_by_day(window)
    trunc = TruncDay if by_day else TruncHour
    rows = (
        Job.objects.filter(window.q(), computing_site=site, status__in=FINAL_STATE_ORDER)
        .annotate(bucket=trunc("modification_time"))
        .values_list("bucket", "status")
        .annotate(n=Count("*"))
        .order_by()
    )
    by_bucket = {}
    for bucket, status, n in rows:
        by_bucket.setdefault(bucket, {})[status] = n
    return [
        {"at": at, "counts": by_bucket.get(at, {}), "total": sum(by_bucket.get(at, {}).values())}
        for at in _buckets(window, by_day)
    ]


def activity_by_day(window):
    """Hourly buckets up to 3 days, daily beyond (at most 30 bars of days, 72 of hours)."""
    return (window.end or timezone.now()) - window.start > timedelta(days=3)


def _buckets(window, by_day):
    """Every hour (or day) start from the window's start to its end, so gaps show as gaps."""
    step = timedelta(days=1) if by_day else timedelta(hours=1)
    at = window.start.replace(minute=0, second=0, microsecond=0)
    if by_day:
        at = at.replace(hour=0)
    end = window.end or timezone.now()
    buckets = []
    while at < end:
        buckets.append(at)
        at += step
    return buckets


def recent_site_files(*, site, limit=RECENT_FILES):
    """The newest file replicas registered at the site, with their file and the dataset they came from.

    Ordered by id, which follows created_at (auto_now_add, ids increase): the primary key index
    reads only the newest rows instead of sorting every replica of a big site."""
    return list(
        FileReplica.objects.filter(site=site)
        .order_by("-id")
        .values("file__lfn", "file__fsize", "file__origin_dataset__name", "state", "pfn", "created_at")[:limit]
    )


def site_failed_jobs(*, site, window):
    return Job.objects.filter(window.q(), computing_site=site, status=JobStatus.FAILED)


# ---------------------------------------------------------------- worker nodes


def worker_nodes(*, site, window):
    """Per worker node of the site: jobs modified in the window by final state, active ones, last seen.

    One GROUP BY with conditional counts; jobs not yet on a node (no modification_host) are left out."""
    finals = {state.value: count_in(state) for state in FINAL_STATE_ORDER}
    rows = (
        Job.objects.filter(window.q(), computing_site=site)
        .exclude(modification_host="")
        .values("modification_host")
        .annotate(jobs=Count("*"), last_seen=Max("modification_time"), **finals)
        .order_by()
    )
    nodes = []
    for row in rows:
        ended = row["finished"] + row["failed"]
        nodes.append({
            "node": row["modification_host"], "jobs": row["jobs"],
            **{state.value: row[state.value] for state in FINAL_STATE_ORDER},
            "active": row["jobs"] - sum(row[state.value] for state in FINAL_STATE_ORDER),
            "failure_pct": _pct(row["failed"], ended), "last_seen": row["last_seen"],
        })  # fmt: skip
    return nodes


def site_failure_pct(nodes):
    """The failure rate of the site over the same jobs: failed / (finished + failed)."""
    failed = sum(node["failed"] for node in nodes)
    finished = sum(node["finished"] for node in nodes)
    return _pct(failed, failed + finished)


def mark_suspect_nodes(nodes, site_pct):
    """Flag nodes failing far more than their site ("black holes" that eat jobs)."""
    for node in nodes:
        rate = node["failure_pct"]
        node["suspect"] = (
            rate is not None
            and node["failed"] >= SUSPECT_MIN_FAILED
            and rate >= SUSPECT_MIN_RATE
            and rate >= (site_pct or 0) + SUSPECT_MARGIN
        )
    return nodes


def _pct(part, whole):
    return round(100 * part / whole, 1) if whole else None

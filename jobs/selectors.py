"""Reads for jobs: querysets shared by the API, the pages and the services."""

from django.db.models import Count

from datasets.models import FileReplica
from pandamon.errors import NotFound
from pandamon.listing import valid_filterset

from . import errorcodes
from .choices import FINAL_STATES, LIVE_STATES, JobStatus
from .filters import JobFilterSet
from .models import Job, JobFile, JobReport, JobStatusLog


def job_list(*, params=None):
    """Jobs matching the shared filter grammar, newest first."""
    queryset = Job.objects.select_related("computing_site").order_by("-pandaid")
    if params is None:
        return queryset
    return valid_filterset(JobFilterSet, params, queryset).qs


def job_detail(*, pandaid):
    job = Job.objects.select_related("computing_site", "computing_site__cloud", "owner").filter(pandaid=pandaid).first()
    if job is None:
        raise NotFound(f"no job with PandaID {pandaid}")
    return job


def job_files(*, job):
    return JobFile.objects.filter(job=job).order_by("type", "id")


def job_history(*, job):
    return JobStatusLog.objects.filter(job=job).order_by("changed_at", "id")


def file_replica_sites(*, lfns):
    """{lfn: [(site name, replica state), ...]} for the catalog files among `lfns` (one query)."""
    sites = {}
    rows = FileReplica.objects.filter(file__lfn__in=list(lfns)).values_list("file__lfn", "site__name", "state")
    for lfn, site, replica_state in rows.order_by("file__lfn", "site__name"):
        sites.setdefault(lfn, []).append((site, replica_state))
    return sites


def pilot_log(*, job):
    """The pilot's log text from its final report ('' when it sent none)."""
    return JobReport.objects.filter(job=job).values_list("pilot_log", flat=True).first() or ""


def job_attempts(*, job):
    """The previous attempt (if any) and the next ones of this job."""
    previous = Job.objects.filter(pandaid=job.parent_id).only("pandaid", "status").first() if job.parent_id else None
    following = list(Job.objects.filter(parent_id=job.pandaid).only("pandaid", "status"))
    return previous, following


def live_and_recent_counts(*, final_window, site_ids=None):
    """{(site_id, cloud): {status: n}}: jobs in a live state whatever their age (an activated job
    waiting for two days is exactly what a shifter must see), jobs in a final state within
    `final_window` (a Q on modification_time), of all sites or of `site_ids`.

    Two GROUP BYs counting rows, not pandaids: the live one is answered from the
    (status, site, modification_time) index alone."""
    live = Job.objects.filter(status__in=LIVE_STATES)
    recent = Job.objects.filter(final_window, status__in=FINAL_STATES)
    counts = {}
    for queryset in (live, recent):
        if site_ids is not None:
            queryset = queryset.filter(computing_site_id__in=site_ids)
        grouped = queryset.values_list("computing_site_id", "cloud", "status").annotate(n=Count("*"))
        for site_id, cloud, status, n in grouped.order_by():
            cell = counts.setdefault((site_id, cloud), {})
            cell[status] = cell.get(status, 0) + n
    return counts


def recent_failures(*, since, limit):
    """The latest failed jobs with the columns that explain them (newest first)."""
    return (
        Job.objects.filter(status=JobStatus.FAILED, modification_time__gte=since)
        .order_by("-modification_time")
        .values("pandaid", "job_name", "computing_site__name", "prod_user_name", "modification_time",
                *errorcodes.ROW_COLUMNS)[:limit]
    )  # fmt: skip


def status_changes_after(last_id, *, older_than, limit, job_fields):
    """JobStatusLog rows after `last_id` in id order, each with `job__<field>` for `job_fields`, for the
    consumers that fold the log incrementally (quota accounting, notifications).

    Stops at the first row not older than `older_than`: ids are handed out at insert but rows become
    visible at commit, so a young row with a smaller id may still be invisible to this reader; a
    consumer's cursor must only move past rows every writer has committed."""
    rows = (
        JobStatusLog.objects.filter(id__gt=last_id)
        .order_by("id")
        .values("id", "job_id", "old_status", "new_status", "changed_at", *(f"job__{name}" for name in job_fields))
    )[:limit]
    changes = []
    for row in rows:
        if row["changed_at"] >= older_than:
            break
        changes.append(row)
    return changes

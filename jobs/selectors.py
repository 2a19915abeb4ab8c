"""Reads for jobs: querysets shared by the API, the pages and the services."""

from django.db.models import Count

from pandamon.errors import InvalidInput, NotFound

from .filters import JobFilterSet
from .models import Job, JobFile, JobStatusLog


def job_list(*, params=None):
    """Jobs matching the shared filter grammar, newest first."""
    queryset = Job.objects.select_related("computing_site").order_by("-pandaid")
    if params is None:
        return queryset
    filterset = JobFilterSet(params, queryset=queryset)
    if not filterset.is_valid():
        raise InvalidInput("invalid filter: " + _errors_line(filterset.errors), details=filterset.errors)
    return filterset.qs


def _errors_line(errors):
    return "; ".join(f"{name}: {' '.join(messages)}" for name, messages in errors.items())


def job_detail(*, pandaid):
    job = Job.objects.select_related("computing_site", "computing_site__cloud", "owner").filter(pandaid=pandaid).first()
    if job is None:
        raise NotFound(f"no job with PandaID {pandaid}")
    return job


def job_files(*, job):
    return JobFile.objects.filter(job=job).order_by("type", "id")


def job_history(*, job):
    return JobStatusLog.objects.filter(job=job).order_by("changed_at", "id")


def job_attempts(*, job):
    """The previous attempt (if any) and the next ones of this job."""
    previous = Job.objects.filter(pandaid=job.parent_id).only("pandaid", "status").first() if job.parent_id else None
    following = list(Job.objects.filter(parent_id=job.pandaid).only("pandaid", "status"))
    return previous, following


def job_counts_by_site_and_status(*, statuses=None, site_ids=None):
    """{site_id: {status: n}} over all jobs (or the given states and sites), counted in SQL."""
    queryset = Job.objects.exclude(computing_site=None)
    if statuses:
        queryset = queryset.filter(status__in=statuses)
    if site_ids is not None:
        queryset = queryset.filter(computing_site_id__in=site_ids)
    rows = queryset.values_list("computing_site_id", "status").annotate(n=Count("pandaid")).order_by()
    counts = {}
    for site_id, status, n in rows:
        counts.setdefault(site_id, {})[status] = n
    return counts

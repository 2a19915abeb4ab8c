"""The job dispatcher behind getJob: each activated job goes to exactly one pilot.

Candidates are locked with SELECT ... FOR UPDATE SKIP LOCKED, so concurrent pilots
of a site take different jobs instead of waiting on each other. On PostgreSQL the
whole dispatch (lock, send, status log, pilot counters, files) is one statement
(jobs/services/dispatch_sql.py): getJob is the hottest call of the system and one
round trip is what keeps it near the cost of the bare dispatch SQL. On other
databases the ORM path below does the same in several statements; on SQLite the
settings make every transaction IMMEDIATE, which serialises dispatchers instead
of locking rows.
"""

from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F

from pandamon.cache import TtlCache
from sites.choices import SiteStatus
from sites.services import record_pilot_contact

from ..choices import PILOT_LABEL_MAP, JobStatus
from ..models import Job, JobFile
from . import dispatch_sql, state

RUNNING_LIKE = (JobStatus.SENT, JobStatus.STARTING, JobStatus.RUNNING)
SENT_REASON = "sent to a pilot"
_running_counts = TtlCache(lambda: settings.PANDA["RUNNING_COUNT_CACHE_SECONDS"])


@dataclass
class PilotRequest:
    """What a pilot told us about itself when asking for work."""

    node: str = ""
    n_jobs: int = 1
    memory_mb: int | None = None
    disk_mb: int | None = None
    prod_source_label: str | None = None


def dispatch_jobs(*, site, request):
    """Send up to `request.n_jobs` of the site's best activated jobs and record the pilot's contact.

    Returns ([(job, files), ...], reason): no jobs and the reason when there are none.
    """
    n_jobs = 0 if site.status == SiteStatus.OFFLINE else _room_at(site, request.n_jobs)
    if n_jobs <= 0:
        sent = []
    elif single_statement_dispatch():
        labels = _labels_for(site, request.prod_source_label)
        sent = dispatch_sql.dispatch(site=site, request=request, n_jobs=n_jobs, labels=labels)
    else:
        sent = _dispatch_orm(site, request, n_jobs)
    record_pilot_contact(site=site, node=request.node, getjob=True, jobs_sent=len(sent))
    return sent, "" if sent else _no_job_reason(site, n_jobs)


def single_statement_dispatch():
    return connection.vendor == "postgresql" and settings.PANDA["DISPATCH_SINGLE_STATEMENT"]


def _no_job_reason(site, room):
    if site.status == SiteStatus.OFFLINE:
        return f"site {site.name} is offline"
    if room <= 0:
        return f"site {site.name} is at its limit of {site.max_running_jobs} running jobs"
    return f"no activated job for site {site.name}"


def _dispatch_orm(site, request, n_jobs):
    with transaction.atomic():
        jobs = list(_candidates(site, request).select_for_update(skip_locked=True)[:n_jobs])
        state.transition_many(
            jobs, JobStatus.SENT, actor=pilot_actor(request.node), reason=SENT_REASON,
            modification_host=request.node[:128], n_sent=F("n_sent") + 1,
        )  # fmt: skip
    for job in jobs:
        job.n_sent += 1
    return _with_files(jobs)


def pilot_actor(node):
    return f"pilot@{node or 'unknown'}"[:150]


def _running_at(site_id):
    return Job.objects.filter(computing_site_id=site_id, status__in=RUNNING_LIKE).count()


def _room_at(site, wanted):
    """How many more jobs the site may start under max_running_jobs (0 = no limit).

    The count is cached per process for a few seconds, so a site can overshoot its
    limit by the jobs dispatched within that time; the limit is a safety valve,
    the pilot factory is what keeps a site at its size.
    """
    if not site.max_running_jobs:
        return wanted
    running = _running_counts.get(site.pk, lambda: _running_at(site.pk))
    return min(wanted, site.max_running_jobs - running)


def _candidates(site, request):
    queryset = Job.objects.filter(status=JobStatus.ACTIVATED, computing_site=site)
    labels = _labels_for(site, request.prod_source_label)
    if labels is not None:
        queryset = queryset.filter(prod_source_label__in=labels)
    if request.memory_mb:
        queryset = queryset.filter(min_ram_count__lte=request.memory_mb)
    if request.disk_mb:
        queryset = queryset.filter(max_disk_count__lte=request.disk_mb)
    return queryset.order_by("-current_priority", "pandaid")


def _labels_for(site, label):
    if site.status == SiteStatus.TEST:
        # A queue in test status runs only test jobs (PanDA relabels user/managed as test).
        return PILOT_LABEL_MAP["test"]
    if not label:
        return None
    return PILOT_LABEL_MAP.get(label, (label,))


def _with_files(jobs):
    files_by_job = defaultdict(list)
    for job_file in JobFile.objects.filter(job_id__in=[job.pandaid for job in jobs]).order_by("id"):
        files_by_job[job_file.job_id].append(job_file)
    return [(job, files_by_job[job.pandaid]) for job in jobs]

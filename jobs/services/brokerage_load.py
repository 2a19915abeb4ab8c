"""The brokerage's per-batch state: site loads (for the weight and the queue limit) and where the
batch's catalogued input is (for the locality factor). Kept up to date as a batch assigns jobs.
See jobs/services/brokerage.py.
"""

from collections import defaultdict

from django.conf import settings
from django.db.models import Count

from ..choices import JobStatus
from ..models import Job
from . import brokerage_sql

COUNTED_STATES = (JobStatus.RUNNING, JobStatus.ACTIVATED, JobStatus.ASSIGNED, JobStatus.STARTING, JobStatus.DEFINED)


def queue_factor():
    return settings.PANDA["BROKERAGE_QUEUE_FACTOR"]


class SiteLoad:
    """Job counts per site for the weight and the queue limit, kept up to date as the batch assigns jobs.

    Sites are numbered 0..n-1 in the order given; `weights[i]` is site i's load weight, or -1 once its
    queue is full (it takes no more jobs from brokerage in this batch).
    """

    def __init__(self, sites):
        self.sites = sites
        self.index = {site.pk: i for i, site in enumerate(sites)}
        self.running = [0] * len(sites)
        self.queued = [0] * len(sites)
        factor = queue_factor()
        self.queue_limit = [factor * site.max_running_jobs if site.max_running_jobs else None for site in sites]
        rows = (
            Job.objects.filter(computing_site__in=[site.pk for site in sites], status__in=COUNTED_STATES)
            .values_list("computing_site_id", "status")
            .annotate(n=Count("pandaid"))
            .order_by()
        )
        for site_id, status, n in rows:
            i = self.index[site_id]
            if status == JobStatus.RUNNING:
                self.running[i] += n
            else:
                self.queued[i] += n
        self.weights = [self._weight(i) for i in range(len(sites))]

    def _weight(self, i):
        limit = self.queue_limit[i]
        if limit is not None and self.queued[i] >= limit:
            return -1.0
        return (self.running[i] + 1) / (self.queued[i] + 10)

    def is_full(self, i):
        return self.weights[i] < 0

    def load_weight(self, i):
        """The weight without the queue limit (what a job kept at its own site is weighed with)."""
        return (self.running[i] + 1) / (self.queued[i] + 10)

    def add_queued(self, i):
        self.queued[i] += 1
        self.weights[i] = self._weight(i)


class InputLocality:
    """Where the batch's catalogued input files are: per job, the share of its input bytes at each site,
    and its files with the sites holding them (what the setupper would otherwise query again)."""

    def __init__(self, jobs, site_index):
        self.shares = {}
        self.files = defaultdict(dict)  # pandaid -> {lfn: (file id, size, {site indexes})}
        for pandaid, lfn, file_id, fsize, site_id in brokerage_sql.input_replicas([job.pandaid for job in jobs]):
            entry = self.files[pandaid].setdefault(lfn, (file_id, fsize or 0, set()))
            if site_id is not None and site_id in site_index:
                entry[2].add(site_index[site_id])
        for pandaid, files in self.files.items():
            total = sum(size for _, size, _ in files.values())
            here = defaultdict(float)
            for _, size, at in files.values():
                part = size / total if total else 1 / len(files)
                for i in at:
                    here[i] += part
            self.shares[pandaid] = {i: min(share, 1.0) for i, share in here.items()}

    def of(self, job):
        """{site index: share} of the job's catalogued input (None when it has none: every site is as good)."""
        return self.shares.get(job.pandaid)

    def missing_at(self, jobs, i):
        """{pandaid: {lfn: file id}} of the jobs' catalogued inputs site i does not hold."""
        missing = {}
        for job in jobs:
            lacking = {lfn: file_id for lfn, (file_id, _, at) in self.files.get(job.pandaid, {}).items() if i not in at}
            if lacking:
                missing[job.pandaid] = lacking
        return missing

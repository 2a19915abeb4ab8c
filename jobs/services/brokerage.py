"""Brokerage, first version: choose a site for each defined job (reference/panda-server.md §4).

A site is a candidate when it is online and its limits cover the job's memory,
disk, walltime and cores. Candidates are weighted
    w = (nRunning + 1) / (nActivated + nAssigned + nStarting + nDefined + 10)
and one of the best is drawn at random in proportion to its weight; the counts are
updated after each pick so one batch spreads over sites. A job no site can take
stays defined with a brokerage diagnostic saying which limit excluded which sites.
"""

import random
from collections import Counter, defaultdict

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone

from sites.choices import SiteStatus
from sites.models import Site

from ..choices import JobStatus
from ..models import Job
from . import state

NO_SITE = 100
ASSIGNED_SITE_UNFIT = 101
COUNTED_STATES = (JobStatus.RUNNING, JobStatus.ACTIVATED, JobStatus.ASSIGNED, JobStatus.STARTING, JobStatus.DEFINED)


def site_limits_refusals(site, job):
    """The limits of `site` that `job` exceeds, as short phrases (empty when it fits)."""
    checks = (
        ("memory", job.min_ram_count, site.max_memory_mb, "MB"),
        ("disk", job.max_disk_count, site.max_disk_mb, "MB"),
        ("walltime", job.max_walltime, site.max_walltime_s, "s"),
    )
    refusals = [
        f"{name} {need} {unit} > {limit} {unit}" for name, need, limit, unit in checks if limit and need > limit
    ]
    if job.core_count > site.cores:
        refusals.append(f"cores {job.core_count} > {site.cores}")
    return refusals


class SiteLoad:
    """Job counts per site for the weight, kept up to date as the batch assigns jobs."""

    def __init__(self, sites):
        self.counts = defaultdict(Counter)
        rows = (
            Job.objects.filter(computing_site__in=sites, status__in=COUNTED_STATES)
            .values_list("computing_site_id", "status")
            .annotate(n=Count("pandaid"))
            .order_by()
        )
        for site_id, status, n in rows:
            self.counts[site_id][status] = n

    def weight(self, site):
        c = self.counts[site.pk]
        queued = c[JobStatus.ACTIVATED] + c[JobStatus.ASSIGNED] + c[JobStatus.STARTING] + c[JobStatus.DEFINED]
        return (c[JobStatus.RUNNING] + 1) / (queued + 10)

    def add_activated(self, site):
        self.counts[site.pk][JobStatus.ACTIVATED] += 1


def choose_site(job, sites, load, rng=random):
    """(site, None) for a fitting site, or (None, diagnostic)."""
    candidates = [site for site in sites if site.status == SiteStatus.ONLINE and not site_limits_refusals(site, job)]
    if not candidates:
        return None, _no_site_diagnostic(job, sites)
    ranked = sorted(candidates, key=load.weight, reverse=True)[: settings.PANDA["BROKERAGE_TOP_SITES"]]
    site = rng.choices(ranked, weights=[load.weight(s) for s in ranked])[0]
    return site, None


def _no_site_diagnostic(job, sites):
    online = [site for site in sites if site.status == SiteStatus.ONLINE]
    if not online:
        return "no site is online"
    excluded = Counter()
    for site in online:
        for refusal in site_limits_refusals(site, job):
            excluded[refusal.split(" ", 1)[0]] += 1
    needs = {"memory": f"{job.min_ram_count} MB", "disk": f"{job.max_disk_count} MB",
             "walltime": f"{job.max_walltime} s", "cores": str(job.core_count)}  # fmt: skip
    parts = [f"{name} {needs[name]} exceeds the limit of {n} site(s)" for name, n in excluded.most_common()]
    return f"no online site fits ({len(online)} online): " + "; ".join(parts)


def broker_defined_jobs(*, batch=None, rng=random):
    """Broker one batch of defined jobs; returns counts for the worker-run record."""
    batch = batch or settings.PANDA["BROKERAGE_BATCH"]
    now = timezone.now()
    with transaction.atomic():
        jobs = list(
            Job.objects.filter(status=JobStatus.DEFINED)
            .order_by(F("brokered_at").asc(nulls_first=True), "pandaid")
            .select_for_update(skip_locked=True)[:batch]
        )
        if not jobs:
            return {"jobs": 0}
        sites = list(Site.objects.select_related("cloud"))
        assigned, refused = _assign(jobs, sites, SiteLoad(sites), rng)
        for site, group in assigned.items():
            state.transition_many(
                group, JobStatus.ACTIVATED, actor="brokerage", reason=f"brokered to {site.name}", now=now,
                computing_site=site, cloud=site.cloud.name, brokered_at=now,
                brokerage_error_code=0, brokerage_error_diag="",
            )  # fmt: skip
        for (code, diag), ids in refused.items():
            Job.objects.filter(pandaid__in=ids).update(
                brokered_at=now, brokerage_error_code=code, brokerage_error_diag=diag[:250]
            )
    return {
        "jobs": len(jobs),
        "activated": sum(len(g) for g in assigned.values()),
        "no_site": sum(len(i) for i in refused.values()),
    }


def _assign(jobs, sites, load, rng):
    sites_by_id = {site.pk: site for site in sites}
    assigned, refused = defaultdict(list), defaultdict(list)
    for job in jobs:
        if job.computing_site_id:
            site, diag, code = _keep_assigned_site(job, sites_by_id[job.computing_site_id])
        else:
            (site, diag), code = choose_site(job, sites, load, rng), NO_SITE
        if site is None:
            refused[(code, diag)].append(job.pandaid)
            continue
        assigned[site].append(job)
        load.add_activated(site)
    return assigned, refused


def _keep_assigned_site(job, site):
    """Jobs submitted for a site stay there, unless the site is offline or too small for them."""
    if site.status == SiteStatus.OFFLINE:
        return None, f"assigned site {site.name} is offline", ASSIGNED_SITE_UNFIT
    refusals = site_limits_refusals(site, job)
    if refusals:
        return None, f"assigned site {site.name} cannot run it: " + "; ".join(refusals), ASSIGNED_SITE_UNFIT
    return site, None, None

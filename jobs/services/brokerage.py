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
from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone

from datasets.choices import ReplicaState
from datasets.models import File, FileReplica
from sites.choices import SiteStatus
from sites.models import Site

from ..choices import FileType, JobStatus
from ..models import Job, JobFile
from . import setupper, state

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
    free_gb, needed_gb = _free_storage_gb(site), settings.PANDA["BROKERAGE_MIN_FREE_GB"]
    if free_gb is not None and needed_gb and free_gb < needed_gb:
        refusals.append(f"storage {free_gb:.1f} GB free < {needed_gb:g} GB")
    return refusals


def _free_storage_gb(site):
    """The free space the site's storage last reported (None when it never did)."""
    try:
        return site.storage_space.free_bytes / 1e9
    except ObjectDoesNotExist:
        return None


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


class InputLocality:
    """Where the batch's catalogued input files are: the share of a job's input bytes at each site."""

    def __init__(self, jobs):
        inputs = JobFile.objects.filter(job__in=jobs, type=FileType.INPUT).values_list("job_id", "lfn")
        self.lfns_of = defaultdict(set)
        for job_id, lfn in inputs:
            self.lfns_of[job_id].add(lfn)
        lfns = set().union(*self.lfns_of.values()) if self.lfns_of else set()
        self.size = dict(File.objects.filter(lfn__in=lfns).values_list("lfn", "fsize")) if lfns else {}
        self.sites_of = defaultdict(set)
        replicas = FileReplica.objects.filter(file__lfn__in=list(self.size), state=ReplicaState.AVAILABLE)
        for lfn, site_id in replicas.values_list("file__lfn", "site_id"):
            self.sites_of[lfn].add(site_id)

    def share(self, job, site):
        """Share (0..1) of the job's catalogued input bytes at `site`; 1 when it has no catalogued input."""
        catalogued = [lfn for lfn in self.lfns_of.get(job.pandaid, ()) if lfn in self.size]
        total = sum(self.size[lfn] for lfn in catalogued)
        if not catalogued:
            return 1.0
        here = [lfn for lfn in catalogued if site.pk in self.sites_of[lfn]]
        if total == 0:
            return len(here) / len(catalogued)
        return sum(self.size[lfn] for lfn in here) / total


def choose_site(job, sites, load, rng=random, locality=None):
    """(site, None) for a fitting site, or (None, diagnostic).

    A site's weight is the load weight times (LOCALITY_FLOOR + the share of the job's input
    bytes already there): a site holding all the input (a complete replica) is preferred,
    one holding none stays possible, its input then transferred.
    """
    candidates = [site for site in sites if site.status == SiteStatus.ONLINE and not site_limits_refusals(site, job)]
    if not candidates:
        return None, _no_site_diagnostic(job, sites)

    def weight(site):
        share = locality.share(job, site) if locality is not None else 1.0
        return load.weight(site) * (settings.PANDA["LOCALITY_FLOOR"] + share)

    ranked = sorted(candidates, key=weight, reverse=True)[: settings.PANDA["BROKERAGE_TOP_SITES"]]
    site = rng.choices(ranked, weights=[weight(s) for s in ranked])[0]
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
    parts = [
        f"{n} site(s) have less than {settings.PANDA['BROKERAGE_MIN_FREE_GB']:g} GB of free storage"
        if name == "storage" else f"{name} {needs[name]} exceeds the limit of {n} site(s)"
        for name, n in excluded.most_common()
    ]  # fmt: skip
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
        sites = list(Site.objects.select_related("cloud", "storage_space"))
        assigned, refused = _assign(jobs, sites, SiteLoad(sites), InputLocality(jobs), rng)
        waiting = 0
        for site, group in assigned.items():
            ready, assigned_jobs = setupper.prepare(site, group, now)
            waiting += len(assigned_jobs)
            for new_state, members, reason in (
                (JobStatus.ACTIVATED, ready, f"brokered to {site.name}"),
                (JobStatus.ASSIGNED, assigned_jobs, f"brokered to {site.name}; waiting for input to be transferred"),
            ):
                state.transition_many(
                    members, new_state, actor="brokerage", reason=reason, now=now,
                    computing_site=site, cloud=site.cloud.name, brokered_at=now,
                    brokerage_error_code=0, brokerage_error_diag="",
                )  # fmt: skip
        for (code, diag), ids in refused.items():
            Job.objects.filter(pandaid__in=ids).update(
                brokered_at=now, brokerage_error_code=code, brokerage_error_diag=diag[:250]
            )
    return {
        "jobs": len(jobs),
        "activated": sum(len(g) for g in assigned.values()) - waiting,
        "assigned": waiting,
        "no_site": sum(len(i) for i in refused.values()),
    }


def _assign(jobs, sites, load, locality, rng):
    sites_by_id = {site.pk: site for site in sites}
    assigned, refused = defaultdict(list), defaultdict(list)
    for job in jobs:
        if job.computing_site_id:
            site, diag, code = _keep_assigned_site(job, sites_by_id[job.computing_site_id])
        else:
            (site, diag), code = choose_site(job, sites, load, rng, locality), NO_SITE
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

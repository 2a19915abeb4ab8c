"""Brokerage: choose a site for each defined job (reference/panda-server.md §4; docs/brokerage.md).

A site is a candidate for a job when
  * it is online (brokeroff, test and offline sites take only jobs that came with their site);
  * its limits cover the job's memory, disk, walltime and cores, and its storage has free space;
  * it has the job's software release installed (Site.releases; a site listing none takes any);
  * its queue is not full: fewer than BROKERAGE_QUEUE_FACTOR x max_running_jobs jobs wait there;
  * the rules that higher layers give through `register_site_filter` allow it: a task's excluded
    sites, a user's per-site storage quota... A rule may also hold a job back (its account is at
    its running-jobs quota): the job stays defined and is tried again next time.
Candidates are weighted
    w = (nRunning + 1) / (nActivated + nAssigned + nStarting + nDefined + 10) x (LOCALITY_FLOOR + input share)
where the input share is the part of the job's catalogued input bytes already at the site (1 when the
job has no catalogued input). Jobs of a batch with the same needs (a task's, typically) form a group:
which sites pass the filters is worked out once for it, and, like PanDA's job broker, its best
BROKERAGE_TOP_SITES sites are its candidates for the batch; each job draws one of them at random in
proportion to its own weight, and the counts are updated after each pick so a batch spreads over sites. Every job brokered gets a BrokerageDecision row (chosen
site, the candidates with their weights, or why none) pointing at its group's BrokerageContext (the
needs, and the rejected sites counted by reason with examples), written in bulk (brokerage_sql.py).
"""

import fnmatch
import heapq
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from types import SimpleNamespace

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction
from django.utils import timezone

from sites.choices import SiteStatus
from sites.models import Site

from ..choices import JobStatus
from ..models import BrokerageDecision, Job
from . import brokerage_sql, setupper
from .brokerage_load import InputLocality, SiteLoad, queue_factor

NO_SITE = 100
ASSIGNED_SITE_UNFIT = 101
HELD = brokerage_sql.HELD  # 102
ANY_RELEASE = "ANY"
# What brokerage, its site filters and the setupper read of a job. The batch is read as light row
# objects with these attributes (building 2,000 Job instances took longer than the query).
JOB_COLUMNS = (
    "pandaid", "job_name", "status", "computing_site_id", "cloud", "task_id", "jobset_id", "prod_source_label",
    "processing_type", "special_handling", "owner_id", "prod_user_name", "prod_user_id", "working_group", "vo",
    "min_ram_count", "max_disk_count", "max_walltime", "core_count", "sw_release", "cmt_config", "container_name",
    "current_priority", "brokered_at", "attempt_nr",
)  # fmt: skip
LOAD_REFRESH_SECONDS = 5  # a run recounts the site loads this often (in between it keeps them itself)
Outcome = BrokerageDecision.Outcome


# -- Rules from higher layers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteRule:
    """What a higher layer (tasks, quotas) says about where one job may go.

    reason: the key its rejections are counted under ("task_excluded", "storage_quota", ...);
    why: the phrase for the sites it rules out ("excluded by task 12"); exclude: site names the job
    must not go to; only: when set, the only site names it may go to; hold: when set, the job is not
    brokered now and this says why. Rules are compared by value: jobs with equal rules share a group.
    """

    reason: str
    why: str = ""
    exclude: frozenset = frozenset()
    only: frozenset | None = None
    hold: str = ""

    def refuses(self, site_name):
        return site_name in self.exclude or (self.only is not None and site_name not in self.only)


# Site filters that higher layers register: `site_filter(jobs)` -> {pandaid: SiteRule or [SiteRule, ...]}
# for the jobs it has something to say about. Called once per batch with the batch's jobs: light
# row objects carrying the attributes of JOB_COLUMNS.
_site_filters = []


def register_site_filter(site_filter):
    """Registering the same filter twice has no effect."""
    if site_filter not in _site_filters:
        _site_filters.append(site_filter)


def _rules_of(jobs):
    rules = defaultdict(list)
    for site_filter in _site_filters:
        for pandaid, found in site_filter(jobs).items():
            rules[pandaid] += [found] if isinstance(found, SiteRule) else list(found)
    return {pandaid: tuple(found) for pandaid, found in rules.items()}


# -- What a site can run --------------------------------------------------------------------------------


def release_installed(site, release):
    """Whether `site` can run jobs of `release`: it lists it (or a matching pattern, or ANY) or lists none."""
    installed = site.releases or ()
    if not release or not installed:
        return True
    return any(
        entry == release or entry == ANY_RELEASE or ("*" in entry and fnmatch.fnmatchcase(release, entry))
        for entry in installed
    )


def site_limits_refusals(site, job):
    """What of `site` keeps it from running `job`, as short phrases (empty when it fits).

    Each phrase starts with the name of the check: memory, disk, walltime, cores, storage, release.
    """
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
    if not release_installed(site, job.sw_release):
        refusals.append(f"release {job.sw_release} is not installed")
    return refusals


def _free_storage_gb(site):
    """The free space the site's storage last reported (None when it never did)."""
    try:
        return site.storage_space.free_bytes / 1e9
    except ObjectDoesNotExist:
        return None


# -- Groups: jobs with the same needs -------------------------------------------------------------------


@dataclass(eq=False)
class Group:
    """Jobs of one batch with equal needs and rules, and what the sites are to them."""

    sample: object  # the first job of the group (a row of JOB_COLUMNS)
    rules: tuple
    needs: dict
    jobs: list = field(default_factory=list)
    n_sites: int = 0
    n_online: int = 0
    eligible: list = field(default_factory=list)  # site indexes passing every filter
    rejected: dict = field(default_factory=dict)  # reason -> [site names]
    phrases: dict = field(default_factory=dict)  # reason -> phrase, for the no-site diagnostic
    hold: str = ""
    unfit: str = ""  # jobs that came with a site: why it cannot run them
    candidates: list | None = None  # the best eligible sites for this pass (site indexes)
    context_id: int | None = None


def _group_key(job, rules):
    return (job.computing_site_id, job.min_ram_count, job.max_disk_count, job.max_walltime, job.core_count,
            job.sw_release, rules)  # fmt: skip


def _needs(job, rules, sites_by_id):
    needs = {"memory_mb": job.min_ram_count, "disk_mb": job.max_disk_count, "walltime_s": job.max_walltime,
             "cores": job.core_count}  # fmt: skip
    if job.sw_release:
        needs["release"] = job.sw_release
    if job.computing_site_id:
        needs["site"] = sites_by_id[job.computing_site_id].name
    if rules:
        needs["rules"] = [_rule_data(rule) for rule in rules]
    return needs


def _rule_data(rule):
    data = {"reason": rule.reason, "why": rule.why}
    if rule.exclude:
        data["exclude"] = sorted(rule.exclude)
    if rule.only is not None:
        data["only"] = sorted(rule.only)
    if rule.hold:
        data["hold"] = rule.hold
    return data


def _site_refusals(site, job, rules):
    """[(reason, phrase), ...] keeping `site` from `job` (status aside)."""
    found = [(phrase.split(" ", 1)[0], phrase) for phrase in site_limits_refusals(site, job)]
    found += [(rule.reason, rule.why or rule.reason) for rule in rules if rule.refuses(site.name)]
    return found


def _evaluate(group, sites, load):
    """Which sites pass every filter for the group's jobs, and why the others do not."""
    job, rules = group.sample, group.rules
    holds = [rule.hold for rule in rules if rule.hold]
    if holds:
        group.hold = "; ".join(holds)
        return
    if job.computing_site_id:
        i = load.index[job.computing_site_id]
        site = sites[i]
        group.n_sites = 1
        if site.status == SiteStatus.OFFLINE:
            group.unfit = f"assigned site {site.name} is offline"
        else:
            refusals = _site_refusals(site, job, rules)
            if refusals:
                group.unfit = f"assigned site {site.name} cannot run it: " + "; ".join(p for _, p in refusals)
        if group.unfit:
            group.rejected = {"assigned_site": [site.name]}
        else:
            group.eligible = [i]
        return
    rejected = defaultdict(list)
    for i, site in enumerate(sites):
        if site.status != SiteStatus.ONLINE:
            rejected["status"].append(site.name)
            continue
        group.n_online += 1
        refusals = _site_refusals(site, job, rules)
        if not refusals and load.is_full(i):
            refusals = [("queue_full", "queue full")]
        for reason, phrase in refusals:
            rejected[reason].append(site.name)
            group.phrases.setdefault(reason, phrase)
        if not refusals:
            group.eligible.append(i)
    group.n_sites = len(sites)
    group.rejected = dict(rejected)


def _no_site_diagnostic(group, now_full=0):
    """Why no site takes the group's jobs, e.g. "no online site fits (12 online): memory 8000 MB exceeds ..."."""
    if not group.n_online:
        return "no site is online"
    job = group.sample
    counts = Counter({reason: len(names) for reason, names in group.rejected.items() if reason != "status"})
    if now_full:
        counts["queue_full"] += now_full
    needs = {"memory": f"{job.min_ram_count} MB", "disk": f"{job.max_disk_count} MB",
             "walltime": f"{job.max_walltime} s", "cores": str(job.core_count)}  # fmt: skip
    min_free = settings.PANDA["BROKERAGE_MIN_FREE_GB"]
    parts = []
    for reason, n in counts.most_common():
        if reason in needs:
            parts.append(f"{reason} {needs[reason]} exceeds the limit of {n} site(s)")
        elif reason == "storage":
            parts.append(f"{n} site(s) have less than {min_free:g} GB of free storage")
        elif reason == "release":
            parts.append(f"release {job.sw_release} is not installed at {n} site(s)")
        elif reason == "queue_full":
            parts.append(f"{n} site(s) have a full queue ({queue_factor():g} x their running-job limit)")
        else:
            parts.append(f"{n} site(s) {group.phrases.get(reason, reason)}")
    return f"no online site fits ({group.n_online} online): " + "; ".join(parts)


# -- Choosing ------------------------------------------------------------------------------------------


def _choose_candidates(group, load, locality, top):
    """The group's best eligible sites for this pass: weight x (floor + the group's mean input share there).

    Like PanDA's job broker, which returns at most 10 candidates per task chunk and picks among them
    per job: the jobs of one group (a task, typically) go to at most `top` sites per pass, each
    job weighing them by its own input share; the list is drawn again once all of them are full.
    """
    weights, floor = load.weights, settings.PANDA["LOCALITY_FLOOR"]
    total = defaultdict(float)
    everywhere = 0  # jobs without catalogued input: every site holds "all" of it
    for job in group.jobs:
        shares = locality.of(job)
        if shares is None:
            everywhere += 1
        else:
            for i, share in shares.items():
                total[i] += share
    n = len(group.jobs)

    def weight(i):
        return weights[i] * (floor + (everywhere + total.get(i, 0.0)) / n)

    open_sites = [i for i in group.eligible if weights[i] > 0]
    group.candidates = heapq.nlargest(top, open_sites, key=weight)
    return group.candidates


def _weigh(candidates, shares, weights, floor):
    """[(site index, weight, input share), ...] of the open candidates for one job, best first."""
    ranked = []
    for i in candidates:
        if weights[i] > 0:
            share = 1.0 if shares is None else shares.get(i, 0.0)
            ranked.append((i, weights[i] * (floor + share), share))
    ranked.sort(key=lambda item: -item[1])
    return ranked


@dataclass(eq=False, slots=True)
class Decision:
    job: object  # a row of JOB_COLUMNS
    group: Group
    outcome: str
    site_index: int | None = None
    candidates: list | None = None  # [(site index, weight, input share), ...], best first
    diag: str = ""
    code: int = 0


def decide(jobs, sites, load, locality, rules_by_job, rng=random):
    """Decide where each job goes; returns [Decision, ...] in job order. Updates `load` as it assigns."""
    sites_by_id = {site.pk: site for site in sites}
    groups, group_of = {}, []
    for job in jobs:
        rules = rules_by_job.get(job.pandaid, ())
        key = _group_key(job, rules)
        group = groups.get(key)
        if group is None:
            group = groups[key] = Group(sample=job, rules=rules, needs=_needs(job, rules, sites_by_id))
            _evaluate(group, sites, load)
        group.jobs.append(job)
        group_of.append(group)
    top, floor = settings.PANDA["BROKERAGE_TOP_SITES"], settings.PANDA["LOCALITY_FLOOR"]
    return [_decide_one(job, group, load, locality, top, floor, rng) for job, group in zip(jobs, group_of, strict=True)]


def _decide_one(job, group, load, locality, top, floor, rng):
    if group.hold:
        return Decision(job, group, Outcome.HELD, diag=group.hold, code=HELD)
    shares = locality.of(job)
    if job.computing_site_id:
        if group.unfit:
            return Decision(job, group, Outcome.UNFIT, diag=group.unfit, code=ASSIGNED_SITE_UNFIT)
        (i,) = group.eligible
        share = 1.0 if shares is None else shares.get(i, 0.0)
        weight = load.load_weight(i) * (floor + share)
        load.add_queued(i)
        return Decision(job, group, Outcome.KEPT, i, [(i, weight, share)])
    fresh = group.candidates is None
    candidates = _choose_candidates(group, load, locality, top) if fresh else group.candidates
    ranked = _weigh(candidates, shares, load.weights, floor)
    if not ranked and not fresh:  # this pass's candidates are full: draw the list again
        ranked = _weigh(_choose_candidates(group, load, locality, top), shares, load.weights, floor)
    if not ranked:
        now_full = sum(1 for i in group.eligible if load.is_full(i))
        return Decision(job, group, Outcome.NO_SITE, diag=_no_site_diagnostic(group, now_full), code=NO_SITE)
    ((i, _, _),) = rng.choices(ranked, weights=[weight for _, weight, _ in ranked])
    load.add_queued(i)
    return Decision(job, group, Outcome.PICKED, i, ranked)


# -- The batch -----------------------------------------------------------------------------------------


def broker_defined_jobs(*, batch=None, rng=random, seconds=None):
    """Broker the defined jobs, a batch (one transaction) at a time; returns the summed counts.

    Goes on while batches come full, for up to `seconds` (BROKERAGE_RUN_SECONDS), and stops once
    it meets jobs it already tried in this call: a backlog is worked off in one run, and jobs no site
    can take are tried once per run. The site loads are counted at the start and then kept up to date
    in memory as jobs are placed, recounted every LOAD_REFRESH_SECONDS.
    """
    batch = batch or settings.PANDA["BROKERAGE_BATCH"]
    seconds = settings.PANDA["BROKERAGE_RUN_SECONDS"] if seconds is None else seconds
    started, clock = timezone.now(), time.monotonic()
    totals, run = Counter(), {}
    while True:
        counts = _broker_batch(batch, rng, started, run)
        totals.update(counts)
        if counts["jobs"] < batch or time.monotonic() - clock >= seconds:
            break
    totals["jobs"] += 0  # always reported, 0 when there was nothing to do
    return dict(totals)


def _broker_batch(batch, rng, started, run):
    now = timezone.now()
    with transaction.atomic():
        jobs = _lock_batch(batch, started)
        if not jobs:
            return {"jobs": 0}
        if "load" not in run or time.monotonic() - run["counted"] > LOAD_REFRESH_SECONDS:
            sites = list(Site.objects.select_related("cloud", "storage_space").order_by("name"))
            run.update(sites=sites, load=SiteLoad(sites), counted=time.monotonic())
        sites, load = run["sites"], run["load"]
        locality = InputLocality(jobs, load.index)
        decisions = decide(jobs, sites, load, locality, _rules_of(jobs), rng)
        brokerage_sql.record_decisions(decisions, sites, now)
        counts = _apply(decisions, sites, locality, now)
    return {"jobs": len(jobs), **counts}


def _lock_batch(batch, started):
    """The next defined jobs, never tried first, then the least recently tried (before `started`: once per
    run); locked, skipping jobs other runs hold.

    Two queries, each in the order of the partial index job_broker_defined (brokered_at, pandaid; nulls
    last): one ORDER BY brokered_at NULLS FIRST could not use it and would sort the whole backlog.
    """
    defined = (
        Job.objects.filter(status=JobStatus.DEFINED)
        .order_by("brokered_at", "pandaid")
        .select_for_update(skip_locked=True)
        .values_list(*JOB_COLUMNS)
    )
    rows = list(defined.filter(brokered_at__isnull=True)[:batch])
    if len(rows) < batch:
        rows += defined.filter(brokered_at__lt=started)[: batch - len(rows)]
    return [SimpleNamespace(**dict(zip(JOB_COLUMNS, row, strict=True))) for row in rows]


def _apply(decisions, sites, locality, now):
    """Set up the data of the jobs placed and move them on; note why the others stay defined."""
    placed = defaultdict(list)
    for decision in decisions:
        if decision.site_index is not None:
            placed[decision.site_index].append(decision.job)
    by_name = {site.name: site for site in sites}
    placements = [
        (sites[i], jobs, locality.missing_at(jobs, i), by_name.get(sites[i].cloud.tier1) if sites[i].cloud_id else None)
        for i, jobs in placed.items()
    ]
    moves = []  # (job, new state, site)
    for (site, _, _, _), (ready, waiting) in zip(placements, setupper.prepare_sites(placements, now), strict=True):
        moves += [(job, JobStatus.ACTIVATED, site) for job in ready] + [
            (job, JobStatus.ASSIGNED, site) for job in waiting
        ]
    brokerage_sql.move_jobs(moves, now)
    refused = [decision for decision in decisions if decision.site_index is None]
    brokerage_sql.note_refusals(refused, now)
    counts = {
        "activated": sum(1 for _, new, _ in moves if new == JobStatus.ACTIVATED),
        "assigned": sum(1 for _, new, _ in moves if new == JobStatus.ASSIGNED),
        "no_site": sum(1 for decision in refused if decision.code != HELD),
    }
    held = sum(1 for decision in refused if decision.code == HELD)
    if held:
        counts["held"] = held
    return counts

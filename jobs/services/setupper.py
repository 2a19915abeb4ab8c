"""The Setupper, Activator and Finisher of the PanDA data flow (reference/panda-server.md §6).

Setupper (at brokerage, for the jobs sent to one site): a job whose catalogued
input is all at the site is activated at once; the others' missing input files go
into one dispatch block per task and label (`panda.<task>.<date>.<label>.<uuid>_dis<PandaID>`),
the site is subscribed to it, an `activate_jobs` callback is registered on it
and the jobs are `assigned`. Outputs with a dataset get a destination dataset
(`<output>_sub<PandaID>`, a member of the output container) subscribed to the
cloud's Tier-1 for archival. Input files the catalog does not know are left to
the pilot (they cannot be transferred), as before the data flow existed.

Activator: the dispatch block is complete at the site -> its assigned jobs are activated.
Finisher: a destination dataset is complete at the Tier-1 -> it is archived and its
transferring jobs whose outputs are all there are finished.
Both run inside the transaction that completed the replica (datasets.services.callbacks).
"""

import uuid
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Exists, OuterRef
from django.utils import timezone

from datasets.choices import Activity, CallbackKind, CallbackState, ReplicaState
from datasets.models import Dataset, DatasetReplica, File, FileReplica, ReplicaCallback, Subscription
from datasets.services import callbacks, subscriptions, system
from datasets.services.replicas import add_replicas_at, deterministic_pfn
from sites.models import Site

from ..choices import LIVE_STATES, FileType, JobStatus
from ..models import Job, JobFile
from . import bulk_sql, state

DISPATCH_PRIORITY = 4
ACTOR = "panda"


# -- Setupper ------------------------------------------------------------------------------------------


_UNSET = object()


def prepare(site, jobs, now, *, missing=None, tier1=_UNSET):
    """Set up the data of `jobs` brokered to `site`; returns (jobs to activate, jobs to assign)."""
    if missing is None:
        missing = _missing_inputs(site, jobs)
    return prepare_sites([(site, jobs, missing, archival_site(site) if tier1 is _UNSET else tier1)], now)[0]


def prepare_sites(placements, now):
    """`prepare` for the jobs of a brokerage batch: [(site, jobs, missing, tier1), ...] -> [(ready, waiting), ...].

    `missing` is {pandaid: {lfn: file id}} of the catalogued inputs the site lacks (the brokerage read
    them with the batch's input replicas) and `tier1` the site's archival site (or None). Dispatch
    blocks, destination datasets, their subscriptions and callbacks are made as by `prepare`, a few
    statements per kind for the whole batch; the job files are pointed at them in one statement per
    column.
    """
    results, blocks, dispatch_rows = [], [], []  # blocks: (site, name, {lfn: file id})
    for site, jobs, missing, _ in placements:
        ready = [job for job in jobs if not missing.get(job.pandaid)]
        waiting = [job for job in jobs if missing.get(job.pandaid)]
        groups = defaultdict(list)
        for job in waiting:
            groups[(job.task_id or 0, job.prod_source_label)].append(job)
        for (task_id, label), group in groups.items():
            name = f"panda.{task_id}.{now:%Y%m%d%H%M%S}.{label}.{uuid.uuid4()}_dis{group[0].pandaid}"
            blocks.append((site, name, {lfn: pk for job in group for lfn, pk in missing[job.pandaid].items()}))
            dispatch_rows += [(job.pandaid, lfn, name) for job in group for lfn in missing[job.pandaid]]
        results.append((ready, waiting))
    _dispatch(blocks)
    bulk_sql.set_dispatch_blocks(dispatch_rows)
    _prepare_outputs(placements)
    return results


def _missing_inputs(site, jobs):
    """{pandaid: {lfn: file id}} of catalogued inputs the site does not hold."""
    inputs = list(
        JobFile.objects.filter(job__in=jobs, type=FileType.INPUT).exclude(lfn="").values_list("job_id", "lfn")
    )
    if not inputs:
        return {}
    catalogued = dict(File.objects.filter(lfn__in={lfn for _, lfn in inputs}).values_list("lfn", "pk"))
    here = set(
        FileReplica.objects.filter(
            site=site, file_id__in=catalogued.values(), state=ReplicaState.AVAILABLE
        ).values_list("file_id", flat=True)
    )
    missing = defaultdict(dict)
    for job_id, lfn in inputs:
        if lfn in catalogued and catalogued[lfn] not in here:
            missing[job_id][lfn] = catalogued[lfn]
    return missing


def _dispatch(blocks):
    """The dispatch blocks of the files groups of jobs lack at their sites, subscribed and watched.

    [(site, name, {lfn: file id}), ...]: each site is subscribed to its block (which brings the files)
    and an activate_jobs callback waits for the block to be complete there.
    """
    made = system.create_dispatch_blocks([(name, sorted(set(files.values()))) for _, name, files in blocks])
    pairs = [(block, site) for block, (site, _, _) in zip(made, blocks, strict=True)]
    subscriptions.subscribe_many(pairs, owner_name=ACTOR, activity=Activity.DISPATCH, priority=DISPATCH_PRIORITY)
    callbacks.register_callbacks(pairs, kind=CallbackKind.ACTIVATE_JOBS, owner_name=ACTOR)


def _prepare_outputs(placements):
    """Point outputs with a dataset at a destination dataset per output dataset and group of jobs (per site)."""
    site_of = {job.pandaid: (site, tier1) for site, jobs, _, tier1 in placements for job in jobs}
    owner_of = {job.pandaid: job.owner_id for _, jobs, _, _ in placements for job in jobs}
    by_dataset = defaultdict(list)
    for row_id, job_id, dataset in bulk_sql.output_rows(site_of):
        by_dataset[(site_of[job_id][0].pk, dataset)].append((row_id, job_id))
    firsts = {key: min(job_id for _, job_id in files) for key, files in by_dataset.items()}
    owners = get_user_model().objects.in_bulk({owner_of[first] for first in firsts.values()} - {None})
    specs = [(key[1], f"{key[1]}_sub{first}", owners.get(owner_of[first])) for key, first in firsts.items()]
    updates, archival = [], []
    for (key, files), destination in zip(by_dataset.items(), system.destination_datasets(specs), strict=True):
        if destination is None:
            continue  # an output dataset name the catalog refuses: the outputs stay uncatalogued
        updates += [(row_id, destination.name) for row_id, _ in files]
        site, tier1 = site_of[firsts[key]]
        if tier1 is not None and tier1.pk != site.pk:
            archival.append((destination, tier1))
    subscriptions.subscribe_many(archival, owner_name=ACTOR, activity=Activity.ARCHIVAL)
    bulk_sql.set_destination_blocks(updates)


def archival_site(site):
    """The Tier-1 of the site's cloud, where job outputs are archived (None when the cloud names none)."""
    name = site.cloud.tier1 if site.cloud_id else ""
    return Site.objects.filter(name=name).first() if name else None


# -- Adder side: outputs into the catalog --------------------------------------------------------------


def register_outputs(job, site):
    """Catalogue a finished job's outputs at its site; returns the destination datasets still to archive.

    Raises ServiceError when the catalog refuses (a known LFN with other content, a quota).
    """
    rows = list(
        JobFile.objects.filter(job=job, type__in=(FileType.OUTPUT, FileType.LOG), status="ready")
        .exclude(destination_dblock="")
        .values("lfn", "guid", "fsize", "checksum", "surl", "destination_dblock")
    )
    by_dataset = defaultdict(list)
    for row in rows:
        by_dataset[row["destination_dblock"]].append(row)
    datasets = {d.name: d for d in Dataset.objects.select_for_update().filter(name__in=list(by_dataset))}
    pfns = {}
    for name, files in by_dataset.items():
        if name not in datasets:
            continue  # outputs of jobs set up before the data flow existed
        ids = system.register_outputs(datasets[name], [_spec(row) for row in files])
        pfns.update({ids[row["lfn"]]: row["surl"] or "" for row in files})
    if not pfns:
        return []
    locked = Site.objects.select_for_update().get(pk=site.pk)
    lfns = dict(File.objects.filter(pk__in=list(pfns)).values_list("pk", "lfn"))
    add_replicas_at(locked, {pk: pfn or deterministic_pfn(locked, lfns[pk]) for pk, pfn in pfns.items()})
    tier1 = archival_site(site)
    if tier1 is None or tier1.pk == site.pk:
        return []
    return [datasets[name] for name in by_dataset if name in datasets]


def _spec(row):
    return {"lfn": row["lfn"], "guid": row["guid"] or None, "fsize": row["fsize"] or 0,
            "adler32": (row["checksum"] or "").removeprefix("ad:")}  # fmt: skip


def await_archival(job, site, destinations):
    """The job is transferring: ask to be told when each destination dataset is complete at the Tier-1."""
    tier1 = archival_site(site)
    for dataset in destinations:
        waiting = ReplicaCallback.objects.filter(
            dataset=dataset, site=tier1, kind=CallbackKind.ARCHIVE, state=CallbackState.WAITING
        )
        if not waiting.exists():
            callbacks.register_callback(dataset=dataset, site=tier1, kind=CallbackKind.ARCHIVE, owner_name=ACTOR)


# -- Activator and Finisher ----------------------------------------------------------------------------


def activate_jobs(dataset, site, now):
    """Callback: the dispatch block is complete at the site; its assigned jobs can run."""
    jobs = list(
        Job.objects.select_for_update()
        .filter(status=JobStatus.ASSIGNED, computing_site=site, pandaid__in=_jobs_reading(dataset.name))
        .order_by("pandaid")
    )
    state.transition_many(jobs, JobStatus.ACTIVATED, actor="activator", now=now,
                          reason=f"input arrived: {dataset.name} complete at {site.name}")  # fmt: skip


def _jobs_reading(block_name):
    return JobFile.objects.filter(dispatch_dblock=block_name).values("job_id")


def finish_jobs(dataset, site, now):
    """Callback: the destination dataset is complete at the Tier-1: archived; finish the jobs all archived."""
    Dataset.objects.filter(pk=dataset.pk).update(archived_at=now)
    jobs = list(
        Job.objects.select_for_update()
        .filter(status=JobStatus.TRANSFERRING, pandaid__in=JobFile.objects.filter(
            destination_dblock=dataset.name).values("job_id"))
        .order_by("pandaid")
    )  # fmt: skip
    done = [job for job in jobs if _outputs_at(job, site)]
    state.transition_many(done, JobStatus.FINISHED, actor="finisher", now=now,
                          reason=f"outputs archived at {site.name}")  # fmt: skip


def _outputs_at(job, site):
    lfns = JobFile.objects.filter(job=job, type__in=(FileType.OUTPUT, FileType.LOG), status="ready").exclude(
        destination_dblock=""
    )
    wanted = lfns.values("lfn")
    held = FileReplica.objects.filter(site=site, file__lfn__in=wanted).aggregate(n=Count("file_id"))["n"]
    return held >= lfns.count()


def register_handlers():
    callbacks.register_handler(CallbackKind.ACTIVATE_JOBS, activate_jobs)
    callbacks.register_handler(CallbackKind.ARCHIVE, finish_jobs)


def clean_dispatch_blocks(*, batch=500, now=None):
    """Dispatch blocks whose jobs are all over: erased, unsubscribed, their replicas left to expire."""
    now = now or timezone.now()
    live = JobFile.objects.filter(dispatch_dblock=OuterRef("name"), job__status__in=LIVE_STATES)
    blocks = list(
        Dataset.objects.filter(subscriptions__activity=Activity.DISPATCH, erased_at__isnull=True)
        .exclude(Exists(live))
        .values_list("pk", flat=True)[:batch]
    )
    expiry = now + timedelta(seconds=settings.PANDA["DISPATCH_REPLICA_LIFETIME_SECONDS"])
    with transaction.atomic():
        for subscription in Subscription.objects.filter(dataset_id__in=blocks).select_related("dataset"):
            subscriptions.remove(subscription)
        DatasetReplica.objects.filter(dataset_id__in=blocks).update(expires_at=expiry)
        Dataset.objects.filter(pk__in=blocks).update(erased_at=now)
    return {"erased": len(blocks)}

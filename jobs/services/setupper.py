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
from django.db import transaction
from django.db.models import Count, Exists, OuterRef
from django.utils import timezone

from datasets.choices import Activity, CallbackKind, CallbackState, ReplicaState
from datasets.models import Dataset, DatasetReplica, File, FileReplica, ReplicaCallback, Subscription
from datasets.services import callbacks, subscriptions, system
from datasets.services.replicas import add_replicas_at, deterministic_pfn
from pandamon.errors import ServiceError
from sites.models import Site

from ..choices import LIVE_STATES, FileType, JobStatus
from ..models import Job, JobFile
from . import state

DISPATCH_PRIORITY = 4
ACTOR = "panda"


# -- Setupper ------------------------------------------------------------------------------------------


def prepare(site, jobs, now):
    """Set up the data of `jobs` brokered to `site`; returns (jobs to activate, jobs to assign)."""
    missing = _missing_inputs(site, jobs)
    ready = [job for job in jobs if not missing.get(job.pandaid)]
    waiting = [job for job in jobs if missing.get(job.pandaid)]
    groups = defaultdict(list)
    for job in waiting:
        groups[(job.task_id or 0, job.prod_source_label)].append(job)
    for (task_id, label), group in groups.items():
        _dispatch(site, group, {lfn: pk for job in group for lfn, pk in missing[job.pandaid].items()}, now,
                  task_id, label)  # fmt: skip
    _prepare_outputs(site, jobs)
    return ready, waiting


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


def _dispatch(site, group, files, now, task_id, label):
    name = f"panda.{task_id}.{now:%Y%m%d%H%M%S}.{label}.{uuid.uuid4()}_dis{group[0].pandaid}"
    block = system.create_dispatch_block(name, sorted(set(files.values())), owner=None)
    subscriptions.subscribe(dataset=block, site=site, owner_name=ACTOR, activity=Activity.DISPATCH,
                            priority=DISPATCH_PRIORITY)  # fmt: skip
    JobFile.objects.filter(job__in=group, type=FileType.INPUT, lfn__in=list(files)).update(dispatch_dblock=name)
    callbacks.register_callback(dataset=block, site=site, kind=CallbackKind.ACTIVATE_JOBS, owner_name=ACTOR)


def _prepare_outputs(site, jobs):
    """Point outputs with a dataset at a destination dataset per output dataset and group of jobs."""
    rows = list(
        JobFile.objects.filter(job__in=jobs, type__in=(FileType.OUTPUT, FileType.LOG))
        .exclude(dataset="")
        .values_list("id", "job_id", "dataset")
    )
    by_dataset = defaultdict(list)
    for row_id, job_id, dataset in rows:
        by_dataset[dataset].append((row_id, job_id))
    owners = {job.pandaid: job.owner for job in jobs}
    tier1 = archival_site(site)
    for name, files in by_dataset.items():
        first = min(job_id for _, job_id in files)
        try:
            destination = system.destination_dataset(name, f"{name}_sub{first}", owner=owners[first])
        except ServiceError:
            continue  # an output dataset name the catalog refuses: the outputs stay uncatalogued
        JobFile.objects.filter(pk__in=[row_id for row_id, _ in files]).update(destination_dblock=destination.name)
        if tier1 is not None and tier1.pk != site.pk:
            subscriptions.subscribe(dataset=destination, site=tier1, owner_name=ACTOR, activity=Activity.ARCHIVAL)


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

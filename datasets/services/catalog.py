"""Datasets: register, new versions, add files, close, freeze, erase (DQ2 operations)."""

from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from pandamon.errors import Conflict, InvalidInput, NotFound

from ..choices import DatasetKind, DatasetState, VersionState
from ..models import Dataset, DatasetFile, DatasetVersion
from ..naming import is_valid_name, parse
from . import completion, deletion, policy, replicas
from .access import check_may_write
from .bulk_sql import insert_memberships
from .files import clean_file_spec, resolve_files

ERASE_GRACE = timedelta(hours=24)


def clean_files(specs):
    return [clean_file_spec(spec, index) for index, spec in enumerate(specs or ())]


MAX_DATASETS_PER_CALL = 10_000
MAX_FILES_PER_CALL = 200_000


def register_new_dataset(*, user, name, kind=DatasetKind.DATASET, files=()):
    """registerNewDataset: a new dataset (version 1, open) with optional files.

    A datablock is immutable from birth: it is registered with its files and frozen.
    """
    return register_new_datasets(user=user, specs=[{"name": name, "kind": kind, "files": files}])[0]


@transaction.atomic
def register_new_datasets(*, user, specs):
    """registerNewDataset in bulk: [{name, kind?, files?}], all or nothing; returns the datasets in order.

    Set-wise (a handful of queries per call, whatever the number of datasets) because
    production registers datasets by the thousand.
    """
    plans = [_plan(user, spec, index) for index, spec in enumerate(specs)]
    _check_limits(plans)
    _check_new_names([plan.name for plan in plans])
    datasets = Dataset.objects.bulk_create([plan.dataset(user) for plan in plans], batch_size=2000)
    if datasets and datasets[0].pk is None:  # backends that cannot return ids from a bulk insert
        by_name = Dataset.objects.in_bulk([plan.name for plan in plans], field_name="name")
        datasets = [by_name[plan.name] for plan in plans]
    DatasetVersion.objects.bulk_create(
        [plan.first_version(dataset) for plan, dataset in zip(plans, datasets, strict=True) if plan.versioned],
        batch_size=2000,
    )
    _add_new_files(plans, datasets)
    # Placement rules subscribe the new datasets in this transaction: all of it or none (docs/ddm-policy.md).
    policy.apply_to_new(datasets)
    return datasets


def _plan(user, spec, index):
    if not isinstance(spec, dict):
        raise InvalidInput(f"datasets[{index}]: give an object with a name (and optionally kind and files)")
    name = str(spec.get("name", ""))
    if not is_valid_name(name):
        raise InvalidInput(
            f"datasets[{index}].name: {name!r} is not a valid dataset name (letters, digits, _ - . : +; at most 255)"
        )
    kind = spec.get("kind") or DatasetKind.DATASET
    if kind not in DatasetKind.values:
        raise InvalidInput(f"datasets[{index}].kind: {kind!r} is not one of {', '.join(DatasetKind.values)}")
    check_may_write(user, name)
    files = spec.get("files") or ()
    if not isinstance(files, list | tuple):
        raise InvalidInput(f"datasets[{index}].files: give a list of files")
    cleaned = clean_files(files)
    if kind == DatasetKind.CONTAINER and cleaned:
        raise InvalidInput(f"{name}: a container holds datasets, not files")
    return _NewDataset(name=name, kind=kind, files=cleaned)


class _NewDataset:
    def __init__(self, *, name, kind, files):
        self.name, self.kind, self.files = name, kind, files
        self.versioned = kind != DatasetKind.CONTAINER

    def dataset(self, user):
        return Dataset(
            name=self.name, kind=self.kind, owner=user if user.is_authenticated else None,
            latest_version=1 if self.versioned else 0,
            state=DatasetState.FROZEN if self.kind == DatasetKind.DATABLOCK else DatasetState.OPEN,
            n_files=len(self.files), bytes=sum(f["fsize"] for f in self.files), **parse(self.name).fields(),
        )  # fmt: skip

    def first_version(self, dataset):
        frozen = self.kind == DatasetKind.DATABLOCK
        return DatasetVersion(
            dataset=dataset, number=1, n_files=dataset.n_files, bytes=dataset.bytes,
            state=VersionState.CLOSED if frozen else VersionState.OPEN, closed_at=timezone.now() if frozen else None,
        )  # fmt: skip


def _check_limits(plans):
    if len(plans) > MAX_DATASETS_PER_CALL:
        raise InvalidInput(f"at most {MAX_DATASETS_PER_CALL} datasets per call, got {len(plans)}")
    n_files = sum(len(plan.files) for plan in plans)
    if n_files > MAX_FILES_PER_CALL:
        raise InvalidInput(f"at most {MAX_FILES_PER_CALL} files per call, got {n_files}")


def _check_new_names(names):
    seen = set()
    for name in names:
        if name in seen:
            raise InvalidInput(f"dataset {name} is listed twice")
        seen.add(name)
    taken = list(Dataset.objects.filter(name__in=names).values_list("name", flat=True)[:1])
    if taken:
        raise Conflict(f"dataset {taken[0]} already exists (names are never reused, even after erasure)")


def _add_new_files(plans, datasets):
    """Files of brand-new datasets: no replica of them can exist yet, so no count to bump."""
    origin = {}
    for plan, dataset in zip(plans, datasets, strict=True):
        lfns = set()
        for spec in plan.files:
            if spec["lfn"] in lfns:
                raise InvalidInput(f"file {spec['lfn']} is listed twice in {plan.name}")
            lfns.add(spec["lfn"])
            origin.setdefault(spec["lfn"], dataset)
    all_specs = [spec for plan in plans for spec in plan.files]
    if not all_specs:
        return
    by_lfn = {f.lfn: f for f in resolve_files(all_specs, origin_of=origin.__getitem__, allow_repeats=True)}
    insert_memberships(
        [
            (dataset.pk, by_lfn[spec["lfn"]].pk, 1)
            for plan, dataset in zip(plans, datasets, strict=True)
            for spec in plan.files
        ]
    )


def get_for_update(name):
    dataset = Dataset.objects.select_for_update().filter(name=name, erased_at__isnull=True).first()
    if dataset is None:
        raise NotFound(f"no dataset named {name}")
    return dataset


@transaction.atomic
def add_files_to_dataset(*, user, name, files):
    """addFilesToDataset: files join the latest version, which must be open. Already present files are skipped."""
    dataset = get_for_update(name)
    check_may_write(user, name)
    _check_files_allowed(dataset)
    if dataset.state != DatasetState.OPEN:
        raise Conflict(f"dataset {name} is {dataset.state}: files can only be added to an open dataset")
    return append_files(dataset, clean_files(files))


@transaction.atomic
def register_new_version(*, user, name, files=()):
    """registerNewVersion: close the latest version and open the next one, with optional new files."""
    dataset = get_for_update(name)
    check_may_write(user, name)
    _check_files_allowed(dataset)
    if dataset.state == DatasetState.FROZEN:
        raise Conflict(f"dataset {name} is frozen: no new version can be registered")
    _close_latest_version(dataset)
    dataset.latest_version += 1
    dataset.state = DatasetState.OPEN
    dataset.save(update_fields=["latest_version", "state", "modified_at"])
    DatasetVersion.objects.create(
        dataset=dataset, number=dataset.latest_version, n_files=dataset.n_files, bytes=dataset.bytes
    )
    append_files(dataset, clean_files(files))
    return dataset


@transaction.atomic
def close_dataset(*, user, name):
    dataset = get_for_update(name)
    check_may_write(user, name)
    if dataset.state == DatasetState.FROZEN:
        raise Conflict(f"dataset {name} is frozen; it cannot be closed again")
    _set_state(dataset, DatasetState.CLOSED)
    return dataset


@transaction.atomic
def freeze_dataset(*, user, name):
    dataset = get_for_update(name)
    check_may_write(user, name)
    _set_state(dataset, DatasetState.FROZEN)
    return dataset


@transaction.atomic
def erase_dataset(*, user, name):
    """eraseDataset: hidden at once, purged with its contents by a periodic task after a grace period."""
    dataset = get_for_update(name)
    check_may_write(user, name)
    dataset.erased_at = timezone.now()
    dataset.save(update_fields=["erased_at", "modified_at"])
    return dataset


def purge_erased_datasets(*, now=None, batch=100, max_batches=100):
    """Delete datasets erased longer ago than the grace period, a batch per transaction; returns counts.

    Their version rows, memberships, replicas and claims go with them, their files leave the
    sites' storage unless a kept replica of another dataset needs them, and files no dataset
    holds any more leave the catalog (deletion.purge_datasets).
    """
    now = now or timezone.now()
    counts = {"datasets": 0, "file_replicas": 0, "files": 0}
    for _ in range(max_batches):
        with transaction.atomic():
            erased = Dataset.objects.select_for_update(skip_locked=True).filter(erased_at__lt=now - ERASE_GRACE)
            ids = list(erased.order_by("pk").values_list("pk", flat=True)[:batch])
            if not ids:
                break
            for name, n in deletion.purge_datasets(ids, now).items():
                counts[name] += n
    return counts


def _check_files_allowed(dataset):
    if dataset.kind == DatasetKind.CONTAINER:
        raise InvalidInput(f"{dataset.name} is a container: it holds datasets, not files")
    if dataset.kind == DatasetKind.DATABLOCK:
        raise Conflict(f"{dataset.name} is a datablock: it is immutable")


def _set_state(dataset, state):
    _close_latest_version(dataset)
    dataset.state = state
    dataset.save(update_fields=["state", "modified_at"])


def _close_latest_version(dataset):
    DatasetVersion.objects.filter(dataset=dataset, number=dataset.latest_version, state=VersionState.OPEN).update(
        state=VersionState.CLOSED, closed_at=timezone.now()
    )


def append_files(dataset, cleaned):
    """Add cleaned file specs to the dataset's latest version; returns the number of files added."""
    if not cleaned:
        return 0
    files = resolve_files(cleaned, origin_of=lambda lfn: dataset)
    present = set(
        DatasetFile.objects.filter(dataset=dataset, file_id__in=[f.pk for f in files]).values_list("file_id", flat=True)
    )
    added = [f for f in files if f.pk not in present]
    insert_memberships([(dataset.pk, f.pk, dataset.latest_version) for f in added])
    n, size = len(added), sum(f.fsize for f in added)
    Dataset.objects.filter(pk=dataset.pk).update(n_files=F("n_files") + n, bytes=F("bytes") + size)
    DatasetVersion.objects.filter(dataset=dataset, number=dataset.latest_version).update(
        n_files=F("n_files") + n, bytes=F("bytes") + size
    )
    dataset.n_files += n
    dataset.bytes += size
    replicas.count_new_dataset_files(dataset=dataset, files=added)
    if added:
        completion.note_files_added(dataset)
    return n

"""Datasets: register, new versions, add files, close, freeze, erase (DQ2 operations)."""

from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from pandamon.errors import Conflict, InvalidInput, NotFound

from ..choices import DatasetKind, DatasetState, VersionState
from ..models import Dataset, DatasetFile, DatasetVersion
from ..naming import is_valid_name, parse
from . import replicas
from .access import check_may_write
from .files import clean_file_spec, resolve_files

ERASE_GRACE = timedelta(hours=24)


def clean_files(specs):
    return [clean_file_spec(spec, index) for index, spec in enumerate(specs or ())]


@transaction.atomic
def register_new_dataset(*, user, name, kind=DatasetKind.DATASET, files=()):
    """registerNewDataset: a new dataset (version 1, open) with optional files.

    A datablock is immutable from birth: it is registered with its files and frozen.
    """
    if not is_valid_name(name):
        raise InvalidInput(f"{name!r} is not a valid dataset name (letters, digits, _ - . : +; at most 255)")
    check_may_write(user, name)
    cleaned = clean_files(files)
    if kind == DatasetKind.CONTAINER and cleaned:
        raise InvalidInput("a container holds datasets, not files")
    if Dataset.objects.filter(name=name).exists():
        raise Conflict(f"dataset {name} already exists (names are never reused, even after erasure)")
    dataset = Dataset.objects.create(
        name=name, kind=kind, owner=user if user.is_authenticated else None,
        latest_version=0 if kind == DatasetKind.CONTAINER else 1, **parse(name).fields(),
    )  # fmt: skip
    if kind != DatasetKind.CONTAINER:
        DatasetVersion.objects.create(dataset=dataset, number=1)
        _add(dataset, cleaned)
    if kind == DatasetKind.DATABLOCK:
        _set_state(dataset, DatasetState.FROZEN)
    return dataset


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
    return _add(dataset, clean_files(files))


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
    _add(dataset, clean_files(files))
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


def purge_erased_datasets(*, now=None, batch=100):
    """Delete datasets erased longer ago than the grace period; returns how many."""
    cutoff = (now or timezone.now()) - ERASE_GRACE
    ids = list(Dataset.objects.filter(erased_at__lt=cutoff).values_list("pk", flat=True)[:batch])
    with transaction.atomic():
        Dataset.objects.filter(pk__in=ids).delete()
    return len(ids)


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


def _add(dataset, cleaned):
    """Add cleaned file specs to the dataset's latest version; returns the number of files added."""
    if not cleaned:
        return 0
    files = resolve_files(cleaned, origin=dataset)
    present = set(DatasetFile.objects.filter(dataset=dataset, file__in=files).values_list("file_id", flat=True))
    added = [f for f in files if f.pk not in present]
    DatasetFile.objects.bulk_create(
        [DatasetFile(dataset=dataset, file=f, version_added=dataset.latest_version) for f in added], batch_size=5000
    )
    n, size = len(added), sum(f.fsize for f in added)
    Dataset.objects.filter(pk=dataset.pk).update(n_files=F("n_files") + n, bytes=F("bytes") + size)
    DatasetVersion.objects.filter(dataset=dataset, number=dataset.latest_version).update(
        n_files=F("n_files") + n, bytes=F("bytes") + size
    )
    dataset.n_files += n
    dataset.bytes += size
    replicas.count_new_dataset_files(dataset=dataset, files=added)
    return n

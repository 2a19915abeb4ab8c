"""Catalog writes made by the server itself for the PanDA data flow.

The Setupper creates dispatch blocks (a job's missing input, `..._dis<PandaID>`)
and destination datasets (`<output dataset>_sub<PandaID>`, members of the output
container); the Adder registers job outputs. These run inside the jobs' own
transactions on behalf of the jobs' owners, so they skip the user permission
checks of the public services (the callers decided already) but keep every
catalog rule: valid names, one file per LFN, counts and completeness kept right.
"""

from django.db.models import Sum
from django.utils import timezone

from pandamon.errors import Conflict, InvalidInput

from ..choices import DatasetKind, DatasetState, VersionState
from ..models import ContainerMember, Dataset, DatasetVersion, File
from ..naming import is_valid_name, parse
from . import policy
from .bulk_sql import insert_memberships
from .catalog import _close_latest_version, append_files, clean_files


def _new(name, kind, owner, *, state=DatasetState.OPEN, n_files=0, size=0):
    if not is_valid_name(name):
        raise InvalidInput(f"{name!r} is not a valid dataset name")
    dataset = Dataset.objects.create(
        name=name, kind=kind, owner=owner, state=state, n_files=n_files, bytes=size,
        latest_version=0 if kind == DatasetKind.CONTAINER else 1, **parse(name).fields(),
    )  # fmt: skip
    if kind != DatasetKind.CONTAINER:
        closed = state != DatasetState.OPEN
        DatasetVersion.objects.create(
            dataset=dataset, number=1, n_files=n_files, bytes=size,
            state=VersionState.CLOSED if closed else VersionState.OPEN, closed_at=timezone.now() if closed else None,
        )  # fmt: skip
    # Output containers are placed by the rules like registered datasets; PanDA's blocks are skipped at once.
    policy.apply_to_new([dataset])
    return dataset


def create_dispatch_block(name, file_ids, owner=None):
    """An immutable datablock of existing files: what one group of jobs lacks at its site."""
    size = File.objects.filter(pk__in=file_ids).aggregate(s=Sum("fsize"))["s"] or 0
    block = _new(name, DatasetKind.DATABLOCK, owner, state=DatasetState.FROZEN, n_files=len(file_ids), size=size)
    insert_memberships([(block.pk, file_id, 1) for file_id in file_ids])
    return block


def destination_dataset(output_name, sub_name, owner=None):
    """The dataset a group of jobs writes its outputs of `output_name` into.

    The output dataset is a container collecting the groups' `_sub` datasets (made when
    missing). When it exists as a plain dataset, the jobs write into it directly.
    """
    output = Dataset.objects.filter(name=output_name, erased_at__isnull=True).first()
    if output is None:
        output = _new(output_name, DatasetKind.CONTAINER, owner)
    if output.kind != DatasetKind.CONTAINER:
        return output
    sub = _new(sub_name, DatasetKind.DATASET, owner)
    ContainerMember.objects.create(container=output, member=sub)
    return sub


def register_outputs(dataset, specs):
    """Add job outputs (file specs: lfn, guid, fsize, adler32) to an open destination dataset.

    Returns {lfn: file id}. A known LFN with other content is a Conflict (the catalog never
    holds two files under one name).
    """
    if dataset.state != DatasetState.OPEN:
        raise Conflict(f"destination dataset {dataset.name} is {dataset.state}; outputs cannot be added")
    append_files(dataset, clean_files(specs))
    return dict(File.objects.filter(lfn__in=[spec["lfn"] for spec in specs]).values_list("lfn", "pk"))


def close_datasets(dataset_ids):
    """Close open datasets (their latest version too): a finished task's outputs take no more files."""
    for dataset in Dataset.objects.filter(pk__in=list(dataset_ids), state=DatasetState.OPEN):
        _close_latest_version(dataset)
        dataset.state = DatasetState.CLOSED
        dataset.save(update_fields=["state", "modified_at"])


def reopen_container(name):
    """A task that gets new input after it ended writes into its output container again."""
    Dataset.objects.filter(name=name, kind=DatasetKind.CONTAINER, state=DatasetState.CLOSED).update(
        state=DatasetState.OPEN
    )

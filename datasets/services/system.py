"""Catalog writes made by the server itself for the PanDA data flow.

The Setupper creates dispatch blocks (a job's missing input, `..._dis<PandaID>`)
and destination datasets (`<output dataset>_sub<PandaID>`, members of the output
container); the Adder registers job outputs. These run inside the jobs' own
transactions on behalf of the jobs' owners, so they skip the user permission
checks of the public services (the callers decided already) but keep every
catalog rule: valid names, one file per LFN, counts and completeness kept right.
"""

from django.utils import timezone

from pandamon.errors import Conflict, InvalidInput

from ..choices import DatasetKind, DatasetState, VersionState
from ..models import ContainerMember, Dataset, DatasetVersion, File
from ..naming import is_valid_name, parse
from . import policy
from .bulk_sql import insert_memberships
from .catalog import _close_latest_version, append_files, clean_files


def _new(name, kind, owner, *, state=DatasetState.OPEN, n_files=0, size=0):
    if kind != DatasetKind.CONTAINER:
        return _new_many([(name, owner, n_files, size)], kind, state=state)[0]
    if not is_valid_name(name):
        raise InvalidInput(f"{name!r} is not a valid dataset name")
    dataset = Dataset.objects.create(
        name=name, kind=kind, owner=owner, state=state, n_files=n_files, bytes=size, latest_version=0,
        **parse(name).fields(),
    )  # fmt: skip
    # Output containers are placed by the rules like registered datasets.
    policy.apply_to_new([dataset])
    return dataset


def _new_many(specs, kind, *, state=DatasetState.OPEN):
    """Datasets (not containers) with their first version: [(name, owner, n_files, size), ...] -> [Dataset, ...].

    One INSERT per table for a whole brokerage batch (the Setupper's blocks came one by one before).
    """
    for name, *_ in specs:
        if not is_valid_name(name):
            raise InvalidInput(f"{name!r} is not a valid dataset name")
    datasets = Dataset.objects.bulk_create(
        [
            Dataset(name=name, kind=kind, owner=owner, state=state, n_files=n_files, bytes=size, latest_version=1,
                    **parse(name).fields())
            for name, owner, n_files, size in specs
        ]
    )  # fmt: skip
    closed = state != DatasetState.OPEN
    closed_at = timezone.now() if closed else None
    DatasetVersion.objects.bulk_create(
        [
            DatasetVersion(dataset=dataset, number=1, n_files=dataset.n_files, bytes=dataset.bytes,
                           state=VersionState.CLOSED if closed else VersionState.OPEN, closed_at=closed_at)
            for dataset in datasets
        ]
    )  # fmt: skip
    # The rules never place PanDA's blocks (dispatch, destination); left out here, as apply_to_new reads
    # the enabled rules even for a list it then finds empty (one query per block of a brokerage batch).
    placed = [dataset for dataset in datasets if dataset.category not in policy.SYSTEM_CATEGORIES]
    if placed:
        policy.apply_to_new(placed)
    return datasets


def create_dispatch_block(name, file_ids, owner=None):
    """An immutable datablock of existing files: what one group of jobs lacks at its site."""
    return create_dispatch_blocks([(name, file_ids)], owner=owner)[0]


def create_dispatch_blocks(blocks, owner=None):
    """`create_dispatch_block` for many blocks, [(name, file ids), ...] -> [Dataset, ...], in a few statements.

    The file ids of a block are distinct; a block's size is the sum of its catalogued files' sizes.
    """
    if not blocks:
        return []
    sizes = dict(File.objects.filter(pk__in={pk for _, ids in blocks for pk in ids}).values_list("pk", "fsize"))
    made = _new_many(
        [(name, owner, len(ids), sum(sizes.get(pk, 0) for pk in ids)) for name, ids in blocks],
        DatasetKind.DATABLOCK, state=DatasetState.FROZEN,
    )  # fmt: skip
    insert_memberships([(block.pk, pk, 1) for block, (_, ids) in zip(made, blocks, strict=True) for pk in ids])
    return made


def destination_dataset(output_name, sub_name, owner=None):
    """The dataset a group of jobs writes its outputs of `output_name` into.

    The output dataset is a container collecting the groups' `_sub` datasets (made when
    missing). When it exists as a plain dataset, the jobs write into it directly.
    """
    (found,) = destination_datasets([(output_name, sub_name, owner)])
    if found is None:
        bad = output_name if not is_valid_name(output_name) else sub_name
        raise InvalidInput(f"{bad!r} is not a valid dataset name")
    return found


def destination_datasets(specs):
    """`destination_dataset` for many groups of jobs: [(output name, sub name, owner), ...] -> [dataset, ...].

    None where the catalog refuses a name (not a valid dataset name). The `_sub` datasets and their
    memberships are written in one statement each; missing output containers are made one by one
    (once per task, not per batch).
    """
    outputs = {
        d.name: d for d in Dataset.objects.filter(name__in={s[0] for s in specs}, erased_at__isnull=True)
    }  # fmt: skip
    found, subs = [None] * len(specs), []
    for k, (output_name, sub_name, owner) in enumerate(specs):
        output = outputs.get(output_name)
        if output is None:
            if not is_valid_name(output_name):
                continue
            output = outputs[output_name] = _new(output_name, DatasetKind.CONTAINER, owner)
        if output.kind != DatasetKind.CONTAINER:
            found[k] = output
        elif is_valid_name(sub_name):
            subs.append((k, output, sub_name, owner))
    made = _new_many([(sub_name, owner, 0, 0) for _, _, sub_name, owner in subs], DatasetKind.DATASET)
    ContainerMember.objects.bulk_create(
        [ContainerMember(container=output, member=sub) for (_, output, _, _), sub in zip(subs, made, strict=True)]
    )
    for (k, _, _, _), sub in zip(subs, made, strict=True):
        found[k] = sub
    return found


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

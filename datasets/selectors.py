"""Reads of the catalog: datasets, their files per version, replicas and completeness."""

import re

from django.db.models import F, Q

from pandamon.errors import InvalidInput, NotFound

from .models import ContainerMember, Dataset, DatasetFile, DatasetReplica, FileReplica
from .naming import FIELDS

WILDCARD = re.compile(r"^[A-Za-z0-9_\-.:+*]{1,255}$")


def name_filter(pattern, field="name"):
    """A DQ2 name pattern with `*` wildcards as an ORM filter (no regex reaches the database)."""
    if not WILDCARD.match(pattern):
        raise InvalidInput(f"{pattern!r} is not a name pattern (letters, digits, _ - . : + and * wildcards)")
    parts = pattern.split("*")
    if len(parts) == 1:
        return Q(**{field: pattern})
    condition = Q()
    if parts[0]:
        condition &= Q(**{f"{field}__startswith": parts[0]})
    if parts[-1]:
        condition &= Q(**{f"{field}__endswith": parts[-1]})
    for middle in parts[1:-1]:
        if middle:
            condition &= Q(**{f"{field}__contains": middle})
    return condition


def dataset_list(*, pattern=None, category=None, fields=None, kind=None):
    queryset = Dataset.objects.filter(erased_at__isnull=True).order_by("name")
    if pattern:
        queryset = queryset.filter(name_filter(pattern))
    if category:
        queryset = queryset.filter(category=category)
    if kind:
        queryset = queryset.filter(kind=kind)
    for name, value in (fields or {}).items():
        if name not in FIELDS:
            raise InvalidInput(f"unknown name field {name!r}; fields are {', '.join(FIELDS)}")
        queryset = queryset.filter(**{name: value})
    return queryset


def dataset_detail(*, name):
    dataset = Dataset.objects.filter(name=name, erased_at__isnull=True).select_related("owner").first()
    if dataset is None:
        raise NotFound(f"no dataset named {name}")
    return dataset


def files_in_dataset(*, dataset, version=None):
    """The files of a version (default: the latest), as DatasetFile rows with their File, by LFN."""
    return _version_contents(dataset, version).select_related("file").order_by("file__lfn")


def file_rows_in_dataset(*, dataset, version=None):
    """listFilesInDataset as plain rows (dicts with FILE_ROW keys), by LFN: what the API pages and streams."""
    return _version_contents(dataset, version).values("version_added", **FILE_ROW).order_by("lfn")


FILE_ROW = {name: F(f"file__{name}") for name in ("lfn", "guid", "fsize", "adler32", "md5", "events")}


def _version_contents(dataset, version):
    version = version or dataset.latest_version
    if not 1 <= version <= dataset.latest_version:
        raise NotFound(f"{dataset.name} has versions 1 to {dataset.latest_version}, not {version}")
    return DatasetFile.objects.filter(dataset=dataset, version_added__lte=version)


def dataset_replicas(*, dataset):
    """Sites holding the dataset, with how complete each copy is."""
    return DatasetReplica.objects.filter(dataset=dataset).select_related("site", "site__cloud").order_by("site__name")


def dataset_replica_rows(queryset):
    """Dataset replicas as plain rows: what listDatasetReplicas and listDatasetsInSite answer."""
    return queryset.values(
        "files_present", "bytes_present", "modified_at", dataset_name=F("dataset__name"),
        n_files=F("dataset__n_files"), site_name=F("site__name"), cloud=F("site__cloud__name"),
        storage_endpoint=F("site__storage_endpoint"),
    )  # fmt: skip


def datasets_in_site(*, site_name, complete=None):
    """listDatasetsInSite: the site's dataset replicas, complete or incomplete."""
    queryset = DatasetReplica.objects.filter(site__name=site_name, dataset__erased_at__isnull=True).select_related(
        "dataset"
    )
    if complete is True:
        queryset = queryset.filter(files_present__gte=F("dataset__n_files"))
    elif complete is False:
        queryset = queryset.filter(files_present__lt=F("dataset__n_files"))
    return queryset.order_by("dataset__name")


def file_replica_rows(*, lfns):
    """listFileReplicas for many LFNs: rows of lfn, site_name, pfn, state, storage_endpoint."""
    return (
        FileReplica.objects.filter(file__lfn__in=lfns)
        .values(
            "pfn", "state", lfn=F("file__lfn"), site_name=F("site__name"), storage_endpoint=F("site__storage_endpoint")
        )
        .order_by("lfn", "site_name")
    )


def container_members(*, container):
    return Dataset.objects.filter(
        pk__in=ContainerMember.objects.filter(container=container).values("member_id")
    ).order_by("name")

"""Reads of the catalog: datasets, their files per version, replicas and completeness."""

import re

from django.db.models import F, Q

from pandamon.errors import InvalidInput, NotFound

from .models import ContainerMember, Dataset, DatasetFile, DatasetReplica, FileReplica
from .naming import FIELDS

WILDCARD = re.compile(r"^[A-Za-z0-9_\-.:+*]{1,255}$")


def name_filter(pattern):
    """A DQ2 name pattern with `*` wildcards as an ORM filter (no regex reaches the database)."""
    if not WILDCARD.match(pattern):
        raise InvalidInput(f"{pattern!r} is not a dataset name pattern (letters, digits, _ - . : + and * wildcards)")
    parts = pattern.split("*")
    if len(parts) == 1:
        return Q(name=pattern)
    condition = Q()
    if parts[0]:
        condition &= Q(name__startswith=parts[0])
    if parts[-1]:
        condition &= Q(name__endswith=parts[-1])
    for middle in parts[1:-1]:
        if middle:
            condition &= Q(name__contains=middle)
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
    version = version or dataset.latest_version
    if not 1 <= version <= dataset.latest_version:
        raise NotFound(f"{dataset.name} has versions 1 to {dataset.latest_version}, not {version}")
    return (
        DatasetFile.objects.filter(dataset=dataset, version_added__lte=version)
        .select_related("file")
        .order_by("file__lfn")
    )


def dataset_replicas(*, dataset):
    """Sites holding the dataset, with how complete each copy is."""
    return DatasetReplica.objects.filter(dataset=dataset).select_related("site", "site__cloud").order_by("site__name")


def datasets_in_site(*, site_name, complete=None):
    queryset = DatasetReplica.objects.filter(site__name=site_name, dataset__erased_at__isnull=True).select_related(
        "dataset"
    )
    if complete is True:
        queryset = queryset.filter(files_present__gte=F("dataset__n_files"))
    elif complete is False:
        queryset = queryset.filter(files_present__lt=F("dataset__n_files"))
    return queryset.order_by("dataset__name")


def file_replicas(*, lfns):
    return (
        FileReplica.objects.filter(file__lfn__in=lfns)
        .select_related("file", "site")
        .order_by("file__lfn", "site__name")
    )


def container_members(*, container):
    return Dataset.objects.filter(
        pk__in=ContainerMember.objects.filter(container=container).values("member_id")
    ).order_by("name")

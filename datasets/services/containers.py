"""Containers: named collections of datasets (and of other containers), never of files, never cyclic."""

from django.db import transaction

from pandamon.errors import Conflict, InvalidInput, NotFound

from ..choices import DatasetKind
from ..models import ContainerMember, Dataset
from . import completion
from .access import check_may_write


def _container(name):
    container = Dataset.objects.select_for_update().filter(name=name, erased_at__isnull=True).first()
    if container is None:
        raise NotFound(f"no container named {name}")
    if container.kind != DatasetKind.CONTAINER:
        raise InvalidInput(f"{name} is a {container.kind}, not a container")
    return container


def _members(names):
    found = {d.name: d for d in Dataset.objects.filter(name__in=names, erased_at__isnull=True)}
    missing = [name for name in names if name not in found]
    if missing:
        raise NotFound(f"no dataset named {missing[0]}")
    return [found[name] for name in names]


def descendants(container_ids):
    """Every dataset reachable from these containers (breadth first, one query per level)."""
    return _reachable(container_ids, start="container_id", step="member_id")


def ancestors(dataset_ids):
    """Every container holding these datasets, directly or through other containers."""
    return _reachable(dataset_ids, start="member_id", step="container_id")


def _reachable(ids, *, start, step):
    seen, frontier = set(), set(ids)
    while frontier:
        found = set(ContainerMember.objects.filter(**{f"{start}__in": frontier}).values_list(step, flat=True))
        frontier = found - seen
        seen |= found
    return seen


@transaction.atomic
def add_to_container(*, user, name, members):
    container = _container(name)
    check_may_write(user, name)
    datasets = _members(members)
    for member in datasets:
        if member.pk == container.pk or container.pk in descendants([member.pk]):
            raise Conflict(f"adding {member.name} to {name} would make a cycle")
    present = set(ContainerMember.objects.filter(container=container).values_list("member_id", flat=True))
    new = [ContainerMember(container=container, member=m) for m in datasets if m.pk not in present]
    ContainerMember.objects.bulk_create(new)
    if new:
        completion.flag_subscriptions({container.pk} | ancestors([container.pk]), reactivate=True)
    return len(new)


@transaction.atomic
def remove_from_container(*, user, name, members):
    container = _container(name)
    check_may_write(user, name)
    deleted, _ = ContainerMember.objects.filter(container=container, member__name__in=members).delete()
    return deleted

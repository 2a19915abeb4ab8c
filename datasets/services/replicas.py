"""Replicas: the local replica catalog (files at a site) and the location catalog (datasets at a site).

DatasetReplica counts are kept right incrementally in the same transaction as the
change that moves them: new file replicas at a site, and new files in a dataset
already replicated there. Registrations for one site are serialised on the site
row, so two concurrent calls cannot both count the same new replica.
"""

import hashlib
from datetime import timedelta

from django.db import transaction
from django.db.models import Count, F, Sum
from django.utils import timezone

from pandamon import roles
from pandamon.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from sites.models import Site

from ..choices import DatasetKind
from ..models import Claim, Dataset, DatasetFile, DatasetReplica, File, FileReplica, SiteReplicaTotals
from ..owners import owned_by
from . import completion
from .access import check_may_write
from .bulk_sql import FileRef, insert_file_replicas


def deterministic_pfn(site, lfn):
    """Where a file lives on a site's storage: <endpoint>/<2 hex>/<2 hex>/<lfn> (like Rucio's hash layout)."""
    digest = hashlib.md5(lfn.encode(), usedforsecurity=False).hexdigest()
    return f"{site.storage_endpoint.rstrip('/')}/{digest[:2]}/{digest[2:4]}/{lfn}"


def _locked_site(name):
    site = Site.objects.select_for_update().filter(name=name).first()
    if site is None:
        raise NotFound(f"unknown site '{name}'")
    return site


def _check_may_register(user, files):
    """Operators register anything; a user only files that belong to one of their own datasets."""
    if (
        roles.is_admin(user)
        or roles.has_role(user, roles.DATA_OPERATOR)
        or roles.has_role(user, roles.PRODUCTION_MANAGER)
    ):
        return
    in_own_datasets = DatasetFile.objects.filter(owned_by(user.username, field="dataset__name"))
    owned = set(in_own_datasets.filter(file_id__in=[f.pk for f in files]).values_list("file_id", flat=True))
    foreign = [f.lfn for f in files if f.pk not in owned]
    if foreign:
        raise PermissionDenied(f"you may register replicas only of files in your own user datasets; not {foreign[0]}")


@transaction.atomic
def register_file_replicas(*, user, site_name, replicas):
    """registerFileReplicas: [{lfn, pfn?}] at a site; returns how many were new. Known replicas are kept."""
    site = _locked_site(site_name)
    lfns = [str(item.get("lfn", "")) for item in replicas]
    files = {f.lfn: f for f in _file_refs(File.objects.filter(lfn__in=lfns))}
    unknown = [lfn for lfn in lfns if lfn not in files]
    if unknown:
        raise NotFound(f"no file named {unknown[0]}" + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""))
    _check_may_register(user, list(files.values()))
    pfns = {str(item["lfn"]): item.get("pfn") or deterministic_pfn(site, str(item["lfn"])) for item in replicas}
    return _add_replicas(site, list(files.values()), pfns)


def _file_refs(queryset):
    return [FileRef(*row) for row in queryset.values_list("pk", "lfn", "fsize")]


# Checks that higher layers (quotas) register; each runs inside the registering transaction after the
# new replicas are counted, with the site and the ids of the files newly present there, and may refuse
# (raise a ServiceError), which rolls the whole registration back.
_replica_checks = []


def register_replica_check(check):
    """`check(site=Site, new_file_ids=[...])`; registering the same check twice has no effect."""
    if check not in _replica_checks:
        _replica_checks.append(check)


def _add_replicas(site, files, pfns):
    return len(add_replicas_at(site, {f.pk: pfns[f.lfn] for f in files}))


def add_replicas_at(site, pfn_by_file_id, *, secondary=False):
    """Register file replicas at a (locked) site, keep the dataset counts right and act on completions.

    `secondary`: the files were copied by the transfer agent; dataset replicas this creates are
    secondary (see datasets.services.deletion). The replica checks (quotas) may refuse by raising;
    the caller's transaction then rolls back. Returns the ids of the files newly present.
    """
    new_ids = insert_file_replicas(site, pfn_by_file_id)
    if new_ids:
        size = File.objects.filter(pk__in=new_ids).aggregate(size=Sum("fsize"))["size"] or 0
        _adjust_site_totals(site, len(new_ids), size)
    grown = _count_at_site(site, new_ids, secondary=secondary)
    for check in _replica_checks:
        check(site=site, new_file_ids=new_ids)
    completion.note_replicas_grew(site, grown)
    return new_ids


def _count_at_site(site, new_file_ids, secondary=False):
    """Add newly present files to the counts of every dataset holding them at this site; returns those datasets."""
    if not new_file_ids:
        return []
    per_dataset = (
        DatasetFile.objects.filter(file_id__in=new_file_ids)
        .values("dataset_id")
        .annotate(n=Count("file_id"), size=Sum("file__fsize"))
        .order_by()
    )
    grown = []
    for row in per_dataset:
        _bump(row["dataset_id"], site.pk, row["n"], row["size"] or 0, secondary)
        grown.append(row["dataset_id"])
    return grown


def _bump(dataset_id, site_id, n, size, secondary=False):
    updated = DatasetReplica.objects.filter(dataset_id=dataset_id, site_id=site_id).update(
        files_present=F("files_present") + n, bytes_present=F("bytes_present") + size, modified_at=timezone.now()
    )
    if not updated:
        DatasetReplica.objects.create(
            dataset_id=dataset_id, site_id=site_id, files_present=n, bytes_present=size, secondary=secondary
        )


def remove_replicas_at(site, file_ids):
    """Drop file replicas from a (locked) site's catalog and take them out of every dataset's count there.

    Replicas left with no file are deleted; complete ones that lost files are not complete any more and
    their subscriptions (if any) are woken to bring the files back. Returns how many replicas were removed.
    """
    removed = FileReplica.objects.filter(site=site, file_id__in=file_ids)
    per_dataset = list(
        DatasetFile.objects.filter(file_id__in=removed.values("file_id"), dataset__replicas__site=site)
        .values("dataset_id")
        .annotate(n=Count("file_id"), size=Sum("file__fsize"))
        .order_by()
    )
    count = _delete_file_replicas(site, removed)
    for row in per_dataset:
        DatasetReplica.objects.filter(dataset_id=row["dataset_id"], site=site).update(
            files_present=F("files_present") - row["n"], bytes_present=F("bytes_present") - (row["size"] or 0),
            complete_at=None, modified_at=timezone.now(),
        )  # fmt: skip
    DatasetReplica.objects.filter(site=site, files_present__lte=0, claims__isnull=True).delete()
    completion.flag_subscriptions({row["dataset_id"] for row in per_dataset}, site=site, reactivate=True)
    return count


def _delete_file_replicas(site, replicas):
    """Delete file replicas of one (locked) site and take them off its totals; returns how many went."""
    gone = replicas.aggregate(size=Sum("file__fsize"))["size"] or 0
    count, _ = replicas.delete()
    _adjust_site_totals(site, -count, -gone)
    return count


def _adjust_site_totals(site, files, size):
    # The caller holds the site's lock: no other registration at this site can race the creation.
    totals = SiteReplicaTotals.objects.filter(site=site)
    if not totals.update(files=F("files") + files, bytes=F("bytes") + size):
        SiteReplicaTotals.objects.create(site=site, files=files, bytes=size)


def recount_site_totals(site_names=None):
    """Recount the sites' stored files and bytes from their file replicas, each site under its lock;
    returns [(site, old (files, bytes), new (files, bytes))] for the sites whose totals were wrong.

    The repair for totals that drifted (file replicas written by raw SQL, outside the services)."""
    sites = Site.objects.order_by("name")
    if site_names:
        sites = sites.filter(name__in=site_names)
    corrected = []
    for site_id in sites.values_list("pk", flat=True):
        with transaction.atomic():
            site = Site.objects.select_for_update().get(pk=site_id)
            counted = FileReplica.objects.filter(site=site).aggregate(n=Count("id"), size=Sum("file__fsize"))
            new = (counted["n"], counted["size"] or 0)
            row = SiteReplicaTotals.objects.filter(site=site).first()
            old = (row.files, row.bytes) if row else (0, 0)
            if new != old:
                SiteReplicaTotals.objects.update_or_create(site=site, defaults={"files": new[0], "bytes": new[1]})
                corrected.append((site.name, old, new))
    return corrected


def count_new_dataset_files(*, dataset, files):
    """Files just added to `dataset`: count those already present at sites holding the dataset."""
    if not files:
        return
    present = list(
        FileReplica.objects.filter(file_id__in=[f.pk for f in files], site__dataset_replicas__dataset=dataset)
        .values("site_id")
        .annotate(n=Count("file_id"), size=Sum("file__fsize"))
        .order_by()
    )
    for row in present:
        _bump(dataset.pk, row["site_id"], row["n"], row["size"] or 0)
    for site in Site.objects.filter(pk__in=[row["site_id"] for row in present]):
        completion.note_replicas_grew(site, [dataset.pk])


@transaction.atomic
def register_dataset_location(*, user, name, site_name, complete):
    """registerDatasetLocations: the site holds the dataset; `complete` registers every file there too."""
    dataset = _dataset(name)
    check_may_write(user, name)
    if dataset.kind == DatasetKind.DATABLOCK and not complete:
        raise InvalidInput(f"{name} is a datablock: a site holds all of it or none, so register it complete")
    site = _locked_site(site_name)
    replica, _ = DatasetReplica.objects.get_or_create(dataset=dataset, site=site)
    if complete:
        if not site.storage_endpoint:
            raise InvalidInput(f"site {site.name} has no storage endpoint to place the files at")
        files = _file_refs(File.objects.filter(memberships__dataset=dataset))
        _add_replicas(site, files, {f.lfn: deterministic_pfn(site, f.lfn) for f in files})
    else:
        _recount(replica)
        completion.note_replicas_grew(site, [dataset.pk])
    replica.refresh_from_db()
    return replica


def _recount(replica):
    """Count what the site already holds of a dataset it newly lists (one indexed query)."""
    totals = FileReplica.objects.filter(
        site_id=replica.site_id, file__memberships__dataset_id=replica.dataset_id
    ).aggregate(n=Count("file_id"), size=Sum("file__fsize"))
    DatasetReplica.objects.filter(pk=replica.pk).update(files_present=totals["n"], bytes_present=totals["size"] or 0)


@transaction.atomic
def delete_dataset_replica(*, user, name, site_name):
    """deleteDatasetReplica: refused while a claim is live; removes the dataset's files from the site
    unless another dataset replicated there still needs them."""
    dataset = _dataset(name)
    check_may_write(user, name)
    site = _locked_site(site_name)
    replica = DatasetReplica.objects.filter(dataset=dataset, site=site).first()
    if replica is None:
        raise NotFound(f"site {site.name} holds no replica of {name}")
    live = replica.claims.filter(expires_at__gt=timezone.now()).order_by("-expires_at").first()
    if live is not None:
        raise Conflict(
            f"the replica of {name} at {site.name} is claimed by {live.owner_name} until {live.expires_at:%Y-%m-%d %H:%M} UTC"
        )
    kept = DatasetFile.objects.filter(dataset__replicas__site=site).exclude(dataset=dataset).values("file_id")
    removed = FileReplica.objects.filter(site=site, file__memberships__dataset=dataset).exclude(file_id__in=kept)
    # Removed files belong to no other dataset replicated here, so no other dataset's count changes.
    count = _delete_file_replicas(site, removed)
    replica.delete()
    return count


@transaction.atomic
def add_claim(*, user, name, site_name, lifetime_s, reason=""):
    if not 60 <= lifetime_s <= 365 * 86400:
        raise InvalidInput("a claim's lifetime must be between 60 s and one year")
    replica = DatasetReplica.objects.filter(dataset=_dataset(name), site__name=site_name).first()
    if replica is None:
        raise NotFound(f"site {site_name} holds no replica of {name}")
    return Claim.objects.create(
        replica=replica, owner=user, owner_name=user.username, reason=reason[:200],
        expires_at=timezone.now() + timedelta(seconds=lifetime_s),
    )  # fmt: skip


def _dataset(name):
    dataset = Dataset.objects.filter(name=name, erased_at__isnull=True).first()
    if dataset is None:
        raise NotFound(f"no dataset named {name}")
    return dataset

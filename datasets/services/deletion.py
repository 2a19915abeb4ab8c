"""Deletion: replicas past their lifetime go, with their files where nothing else needs them.

A dataset replica of PanDA's own blocks (dispatch, destination) with an `expires_at` in the
past, no live claim and no subscription of the dataset at the site is reaped (other expired
replicas are proposed for deletion and go once a data operator approves: datasets.services.cleaning): its row goes, and so do the
site's replicas of its files that no kept replica needs. Another replica at the
site keeps a file when it is not expiring and is claimed, subscribed, or primary
(registered by someone, not `secondary`): a secondary replica nobody subscribed
to is only what transfers for others happened to bring (input copied for jobs),
like a Rucio replica without locks, and protects nothing. Rows are deleted in the transaction; the
files on storage after commit (a crash in between leaves dark files, which the
consistency check reports).
"""

import logging
import os
import urllib.request

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from client.storage import local_path
from sites.models import Site

from ..choices import SubscriptionState
from ..models import Claim, Dataset, DatasetFile, DatasetReplica, File, FileReplica, Subscription
from .replicas import remove_replicas_at

logger = logging.getLogger(__name__)


def reap_expired_replicas(*, now=None, batch=100):
    """Reap up to `batch` expired replicas; returns counts."""
    now = now or timezone.now()
    counts = {"replicas": 0, "files": 0}
    for replica_id in list(_expired(now).values_list("pk", flat=True)[:batch]):
        with transaction.atomic():
            counts["files"] += _reap(replica_id, now)
            counts["replicas"] += 1
    return counts


# Expired replicas of these (PanDA's own blocks) are deleted at once; others are proposed for deletion and
# wait for a data operator's approval (datasets.services.cleaning).
SYSTEM_CATEGORIES = ("dispatch", "destination")


def _expired(now):
    live_claim = Claim.objects.filter(replica=OuterRef("pk"), expires_at__gt=now)
    subscribed = Subscription.objects.filter(dataset_id=OuterRef("dataset_id"), site_id=OuterRef("site_id")).exclude(
        state=SubscriptionState.SUSPENDED
    )
    return (
        DatasetReplica.objects.filter(expires_at__lt=now, dataset__category__in=SYSTEM_CATEGORIES)
        .exclude(Exists(live_claim))
        .exclude(Exists(subscribed))
        .order_by("expires_at")
    )


def _reap(replica_id, now):
    replica = DatasetReplica.objects.select_for_update().filter(pk=replica_id, expires_at__lt=now).first()
    if replica is None:  # reaped by a concurrent run, or given a new lifetime
        return 0
    return remove_replica(replica, now)


def remove_replica(replica, now):
    """Delete a (locked) dataset replica with the site's replicas of its files that no kept replica needs;
    the files leave storage after commit. Returns how many file replicas went. The caller checked it may go."""
    site = Site.objects.select_for_update().get(pk=replica.site_id)
    kept = _kept_files(site, replica, now)
    doomed = list(
        FileReplica.objects.filter(site=site, file__memberships__dataset_id=replica.dataset_id)
        .exclude(file_id__in=kept)
        .values_list("file_id", "pfn")
    )
    remove_replicas_at(site, [file_id for file_id, _ in doomed])
    DatasetReplica.objects.filter(pk=replica.pk).delete()
    pfns = [pfn for _, pfn in doomed]
    transaction.on_commit(lambda: delete_from_storage(pfns))
    return len(doomed)


FILE_CHUNK = 5000  # file ids per query when looking for orphans (SQLite caps a statement's parameters)


def purge_datasets(dataset_ids, now):
    """Delete (locked, erased) datasets for good: their replicas go as reaped ones do (with the files on
    storage that no kept replica needs, after commit), then the datasets with their memberships, then
    their files that no dataset holds and no site has any more. Returns counts."""
    counts = {"datasets": len(dataset_ids), "file_replicas": 0, "files": 0}
    replicas = DatasetReplica.objects.select_for_update().filter(dataset_id__in=dataset_ids).order_by("site_id", "pk")
    for replica in replicas:
        counts["file_replicas"] += remove_replica(replica, now)
    file_ids = list(DatasetFile.objects.filter(dataset_id__in=dataset_ids).values_list("file_id", flat=True))
    Dataset.objects.filter(pk__in=dataset_ids).delete()
    held = DatasetFile.objects.filter(file_id=OuterRef("pk"))
    stored = FileReplica.objects.filter(file_id=OuterRef("pk"))
    for start in range(0, len(file_ids), FILE_CHUNK):
        orphans = File.objects.filter(pk__in=file_ids[start : start + FILE_CHUNK])
        _, deleted = orphans.exclude(Exists(held)).exclude(Exists(stored)).delete()
        counts["files"] += deleted.get(File._meta.label, 0)
    return counts


def _kept_files(site, reaped, now):
    keepers = (
        DatasetReplica.objects.filter(site=site)
        .exclude(pk=reaped.pk)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .filter(
            Q(secondary=False)
            | Q(claims__expires_at__gt=now)
            | Q(dataset__subscriptions__site=site, dataset__subscriptions__state__in=_WANTING)
        )
    )
    return DatasetFile.objects.filter(dataset_id__in=keepers.values("dataset_id")).values("file_id")


_WANTING = (SubscriptionState.ACTIVE, SubscriptionState.DONE, SubscriptionState.STUCK)


def delete_from_storage(pfns):
    """Remove files from storage (directory or HTTP DELETE); failures are logged, the check finds leftovers."""
    for pfn in pfns:
        try:
            if pfn.startswith(("http://", "https://")):
                urllib.request.urlopen(urllib.request.Request(pfn, method="DELETE"), timeout=30).close()
            else:
                os.remove(local_path(pfn))
        except FileNotFoundError:
            pass
        except OSError as exc:
            logger.warning("could not delete %s from storage: %s", pfn, exc)

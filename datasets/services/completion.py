"""When a dataset replica becomes complete, and what that sets off.

A replica is complete when the site holds every file of the dataset's latest
version (files_present = dataset.n_files). The moment is recorded in
DatasetReplica.complete_at, in the same transaction as the replicas that made
it complete, so each completion is acted on exactly once: the subscriptions of
the dataset at the site are done and its waiting callbacks fire. New files in
the dataset make its replicas incomplete again and wake the subscriptions that
want them (the dataset's own and those of the containers holding it).
"""

from django.db.models import F, Q
from django.utils import timezone

from ..choices import SubscriptionState
from ..models import DatasetReplica, Subscription
from ..policy_models import BUCKETS
from . import callbacks, containers


def note_replicas_grew(site, dataset_ids, now=None):
    """Replicas at `site` of these datasets gained files: mark and act on those now complete."""
    if not dataset_ids:
        return []
    now = now or timezone.now()
    _flag_partial(site, dataset_ids)
    newly = dict(
        DatasetReplica.objects.filter(
            site=site, dataset_id__in=dataset_ids, complete_at__isnull=True,
            dataset__n_files__gt=0, files_present__gte=F("dataset__n_files"),
        ).values_list("pk", "dataset_id")
    )  # fmt: skip
    if not newly:
        return []
    DatasetReplica.objects.filter(pk__in=list(newly)).update(complete_at=now)
    complete = list(newly.values())
    Subscription.objects.filter(site=site, dataset_id__in=complete).exclude(
        state__in=(SubscriptionState.SUSPENDED, SubscriptionState.DONE)
    ).update(state=SubscriptionState.DONE, done_at=now, reason="", stuck_at=None, repaired_at=None, modified_at=now)
    # A container's subscription is done when all its datasets are: the agent decides on its next pass.
    flag_subscriptions(containers.ancestors(complete), site=site)
    callbacks.fire_waiting(site, complete, now)
    return complete


def _flag_partial(site, dataset_ids):
    """Subscriptions to a share of a spread copy are done before the replica is complete: the agent looks
    again whenever files of their dataset arrive (the (site, state) index keeps this to a few rows)."""
    Subscription.objects.filter(site=site, dataset_id__in=dataset_ids, state=SubscriptionState.ACTIVE).filter(
        Q(share_start__gt=0) | Q(share_end__lt=BUCKETS)
    ).update(needs_evaluation=True)


def note_files_added(dataset):
    """New files in `dataset`: its complete replicas no longer are, and its subscribers want the files."""
    DatasetReplica.objects.filter(dataset=dataset, complete_at__isnull=False, files_present__lt=dataset.n_files).update(
        complete_at=None
    )
    flag_subscriptions({dataset.pk} | containers.ancestors([dataset.pk]), reactivate=True)


def flag_subscriptions(dataset_ids, *, site=None, reactivate=False):
    """Ask the subscription agent to look again at the subscriptions of these datasets (and containers)."""
    if not dataset_ids:
        return
    subscriptions = Subscription.objects.filter(dataset_id__in=list(dataset_ids)).exclude(
        state=SubscriptionState.SUSPENDED
    )
    if site is not None:
        subscriptions = subscriptions.filter(site=site)
    subscriptions.update(needs_evaluation=True)
    if reactivate:
        subscriptions.filter(state=SubscriptionState.DONE).update(
            state=SubscriptionState.ACTIVE, done_at=None, modified_at=timezone.now()
        )

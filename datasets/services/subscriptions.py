"""Subscriptions: a site asks to hold a dataset, a container or a datablock; the agent makes it so.

The subscription agent takes the subscriptions flagged by catalog changes (and,
as a safety net, any not looked at for SUBSCRIPTION_RECHECK_SECONDS), computes in
SQL the files the site should hold and does not, and queues one transfer request
per missing file (INSERT ... ON CONFLICT DO NOTHING: running twice, or two agents
at once, queue nothing twice). A subscription is done when nothing is missing,
stuck when a missing file's transfer has failed for good; stuck ones get their
failed transfers queued again after SUBSCRIPTION_REPAIR_SECONDS.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from pandamon import roles
from pandamon.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from sites.models import Site

from ..choices import Activity, SubscriptionState, TransferState
from ..flow_selectors import subscribed_dataset_ids, wanted_dataset_ids
from ..models import Dataset, File, Subscription, TransferRequest
from ..policy_models import BUCKETS
from .access import check_may_write

S = SubscriptionState
QUEUE_CHUNK = 5000
SYSTEM_ACTIVITIES = {Activity.DISPATCH, Activity.ARCHIVAL}


# -- what users and the PanDA data flow call ----------------------------------------------------------


def subscribe(*, dataset, site, owner_name, owner=None, activity=Activity.USER, priority=3):
    """Subscribe `site` to `dataset` (idempotent: an existing subscription is returned, raised in priority)."""
    subscription, created = Subscription.objects.get_or_create(
        dataset=dataset, site=site,
        defaults={"owner": owner, "owner_name": owner_name[:150], "activity": activity, "priority": priority},
    )  # fmt: skip
    if not created and subscription.priority < priority:
        Subscription.objects.filter(pk=subscription.pk).update(priority=priority, needs_evaluation=True)
        subscription.priority = priority
    if created:
        transaction.on_commit(_queue_evaluation)
    return subscription


def subscribe_many(pairs, *, owner_name, activity, priority=3):
    """`subscribe` for many (dataset, site) pairs of the PanDA data flow, in a few statements.

    Existing subscriptions are raised in priority as by `subscribe`; the others are created in one
    INSERT and the agent is queued once (not once per subscription) after commit.
    """
    wanted = {(dataset.pk, site.pk): (dataset, site) for dataset, site in pairs}
    if not wanted:
        return
    existing = Subscription.objects.filter(
        dataset_id__in={d for d, _ in wanted}, site_id__in={s for _, s in wanted}
    ).values_list("pk", "dataset_id", "site_id", "priority")
    lower = []
    for pk, dataset_id, site_id, current in existing:
        if wanted.pop((dataset_id, site_id), None) is not None and current < priority:
            lower.append(pk)
    if lower:
        Subscription.objects.filter(pk__in=lower).update(priority=priority, needs_evaluation=True)
    if wanted:
        # ignore_conflicts: one made concurrently since the read stays as it is, as get_or_create would.
        Subscription.objects.bulk_create(
            [Subscription(dataset=dataset, site=site, owner_name=owner_name[:150], activity=activity,
                          priority=priority) for dataset, site in wanted.values()],
            ignore_conflicts=True,
        )  # fmt: skip
        transaction.on_commit(_queue_evaluation)


def _queue_evaluation():
    from ..tasks import evaluate_subscriptions

    evaluate_subscriptions.delay()


@transaction.atomic
def create_subscription(*, user, name, site_name, priority=3, activity=Activity.USER):
    """registerDatasetSubscription: a site is to hold the dataset (see _check_may_subscribe for who may)."""
    dataset = Dataset.objects.filter(name=name, erased_at__isnull=True).first()
    if dataset is None:
        raise NotFound(f"no dataset named {name}")
    site = Site.objects.filter(name=site_name).first()
    if site is None:
        raise NotFound(f"unknown site '{site_name}'")
    if not site.storage_endpoint:
        raise InvalidInput(f"site {site.name} has no storage endpoint to receive files")
    if not isinstance(priority, int) or isinstance(priority, bool) or not 1 <= priority <= 5:
        raise InvalidInput("priority must be an integer from 1 (lowest) to 5 (highest)")
    if activity not in Activity.values or activity in SYSTEM_ACTIVITIES:
        raise InvalidInput(f"activity must be one of: {Activity.USER}, {Activity.PRODUCTION}, {Activity.DATA_TAKING}")
    if activity == Activity.DATA_TAKING and not (roles.is_admin(user) or roles.has_role(user, roles.DATA_OPERATOR)):
        raise PermissionDenied("data_taking transfers go first in every queue: only data operators make them")
    _check_may_subscribe(user, name)
    if Subscription.objects.filter(dataset=dataset, site=site).exists():
        raise Conflict(f"{site.name} is already subscribed to {name}")
    return subscribe(dataset=dataset, site=site, owner=user, owner_name=user.username,
                     activity=activity, priority=priority)  # fmt: skip


def _check_may_subscribe(user, name):
    """Who may write a dataset may place it; production managers place any dataset (data placement
    for production and analysis is their job), data operators and admins too."""
    if roles.has_role(user, roles.PRODUCTION_MANAGER):
        return
    check_may_write(user, name)


def _owned_subscription(user, pk):
    subscription = Subscription.objects.select_for_update().select_related("dataset", "site").filter(pk=pk).first()
    if subscription is None:
        raise NotFound(f"no subscription {pk}")
    if subscription.owner_id == user.pk or roles.is_admin(user) or roles.has_role(user, roles.DATA_OPERATOR):
        return subscription
    raise PermissionDenied(
        f"subscription {pk} belongs to {subscription.owner_name}; only they or a data operator may change it"
    )


@transaction.atomic
def suspend_subscription(*, user, pk, reason=""):
    subscription = _owned_subscription(user, pk)
    reason = f"suspended by {user.username}" + (f": {reason}" if reason else "")
    Subscription.objects.filter(pk=pk).update(
        state=S.SUSPENDED, reason=reason[:500], needs_evaluation=False, modified_at=timezone.now()
    )
    subscription.refresh_from_db()
    return subscription


@transaction.atomic
def resume_subscription(*, user, pk):
    """Back to work: failed transfers are queued again and the agent re-checks what is missing."""
    subscription = _owned_subscription(user, pk)
    _requeue_failed(subscription)
    Subscription.objects.filter(pk=pk).update(
        state=S.ACTIVE, reason="", stuck_at=None, repaired_at=None, needs_evaluation=True, modified_at=timezone.now()
    )
    subscription.refresh_from_db()
    transaction.on_commit(_queue_evaluation)
    return subscription


@transaction.atomic
def delete_subscription(*, user, pk):
    """Stop wanting the data; queued transfers no other subscription needs are dropped. Replicas stay."""
    remove(_owned_subscription(user, pk))


def remove(subscription):
    """Delete a subscription and its queued transfers that no other subscription of the site wants."""
    site, dataset_ids = subscription.site_id, _dataset_ids(subscription)
    subscription.delete()
    others = Dataset.objects.filter(subscriptions__site_id=site)
    still_wanted = wanted_dataset_ids(list(others.exclude(subscriptions__state=S.SUSPENDED)))
    TransferRequest.objects.filter(
        destination_id=site, state=TransferState.QUEUED, file__memberships__dataset_id__in=dataset_ids
    ).exclude(file__memberships__dataset_id__in=still_wanted).delete()


# -- the agent -----------------------------------------------------------------------------------------


def evaluate_subscriptions(*, batch=None, now=None):
    """One agent pass over the subscriptions with news; returns counts for the worker-run record.

    One transaction per subscription: its transfers are claimable as soon as they are
    queued, and a concurrent agent takes the next subscription instead of waiting.
    """
    batch = batch or settings.PANDA["SUBSCRIPTION_BATCH"]
    now = now or timezone.now()
    counts = {"evaluated": 0, "missing": 0, "done": 0, "stuck": 0, "repaired": 0}
    counts["repaired"] = _repair_stuck(now)
    for _ in range(batch):
        with transaction.atomic():
            picked = _to_evaluate(1, now)
            if not picked:
                break
            missing, state = _evaluate(picked[0], now)
        counts["evaluated"] += 1
        counts["missing"] += missing
        if state in (S.DONE, S.STUCK):
            counts[state] += 1
    return counts


def _to_evaluate(batch, now):
    recheck_before = now - timedelta(seconds=settings.PANDA["SUBSCRIPTION_RECHECK_SECONDS"])
    due = Q(needs_evaluation=True) | Q(evaluated_at__lt=recheck_before) | Q(evaluated_at__isnull=True)
    return list(
        Subscription.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(due, dataset__erased_at__isnull=True)
        .exclude(state=S.SUSPENDED)
        .select_related("dataset", "site")
        .order_by("-needs_evaluation", "-priority", "id")[:batch]
    )


def _dataset_ids(subscription):
    return subscribed_dataset_ids(subscription)


def missing_files(subscription):
    """Files the subscription wants at its site that the site does not hold (a queryset of File)."""
    return (
        File.objects.filter(memberships__dataset_id__in=_dataset_ids(subscription))
        .exclude(replicas__site=subscription.site)
        .distinct()
    )


def _missing_in_share(subscription):
    """[(file id, size)] missing at the site; for a share of a spread copy only the files of its buckets."""
    if not is_partial(subscription):
        return list(missing_files(subscription).values_list("pk", "fsize"))
    from .policy import bucket_of

    rows = missing_files(subscription).values_list("pk", "fsize", "lfn")
    return [
        (pk, fsize) for pk, fsize, lfn in rows if subscription.share_start <= bucket_of(lfn) < subscription.share_end
    ]


def is_partial(subscription):
    return subscription.share_start > 0 or subscription.share_end < BUCKETS


def _evaluate(subscription, now):
    """Queue what is missing and set the state; returns (files missing, new state)."""
    missing = _missing_in_share(subscription)
    if missing:
        _queue(subscription, missing, now)
    state, reason, stuck_at = _state_after(subscription, [pk for pk, _ in missing], now)
    newly_stuck = state == S.STUCK and subscription.state != S.STUCK
    Subscription.objects.filter(pk=subscription.pk).update(
        state=state, reason=reason[:500], stuck_at=stuck_at, needs_evaluation=False, evaluated_at=now, modified_at=now,
        done_at=subscription.done_at if state != S.DONE else (subscription.done_at or now),
        stuck_count=F("stuck_count") + (1 if newly_stuck else 0),
        repaired_at=None if state == S.DONE else subscription.repaired_at,
    )  # fmt: skip
    return len(missing), state


def _state_after(subscription, missing_ids, now):
    """(state, reason, stuck_at): stuck_at keeps the first time of a streak of failures through repairs
    (so the stuck time and the alarm do not restart at each repair) and is cleared once done."""
    if not missing_ids:
        return S.DONE, "", None
    failed = (
        TransferRequest.objects.filter(
            destination=subscription.site, state=TransferState.FAILED, file_id__in=missing_ids
        )  # fmt: skip
        .select_related("file")
        .order_by("-finished_at")
    )
    first = failed.first()
    if first is None:
        return S.ACTIVE, "", subscription.stuck_at
    n = failed.count()
    reason = f"{n} file(s) failed every transfer attempt; latest: {first.file.lfn}: {first.error}"
    return S.STUCK, reason, subscription.stuck_at or now


def _queue(subscription, missing, now):
    """One request per missing file; an existing one is reused (done ones whose replica vanished go again)."""
    site = subscription.site
    for start in range(0, len(missing), QUEUE_CHUNK):
        chunk = missing[start : start + QUEUE_CHUNK]
        TransferRequest.objects.bulk_create(
            [
                TransferRequest(
                    file_id=pk,
                    destination=site,
                    activity=subscription.activity,
                    priority=subscription.priority,
                    bytes=fsize,
                    requested_at=now,
                    next_attempt_at=now,
                )  # fmt: skip
                for pk, fsize in chunk
            ],
            ignore_conflicts=True,
        )
        ids = [pk for pk, _ in chunk]
        existing = TransferRequest.objects.filter(destination=site, file_id__in=ids)
        existing.filter(state=TransferState.DONE).update(
            state=TransferState.QUEUED, attempts=0, error="", requested_at=now, next_attempt_at=now, finished_at=None
        )
        existing.filter(state=TransferState.QUEUED, priority__lt=subscription.priority).update(
            priority=subscription.priority
        )


def _repair_stuck(now):
    """Queue again the failed transfers of subscriptions stuck for longer than the repair delay."""
    before = now - timedelta(seconds=settings.PANDA["SUBSCRIPTION_REPAIR_SECONDS"])
    repaired = 0
    due = Q(repaired_at__isnull=True, stuck_at__lt=before) | Q(repaired_at__lt=before)
    with transaction.atomic():
        stuck = Subscription.objects.select_for_update(skip_locked=True).filter(due, state=S.STUCK)
        for subscription in stuck.select_related("dataset", "site")[:100]:
            _requeue_failed(subscription)
            Subscription.objects.filter(pk=subscription.pk).update(needs_evaluation=True, repaired_at=now)
            repaired += 1
    return repaired


def _requeue_failed(subscription):
    now = timezone.now()
    return TransferRequest.objects.filter(
        destination=subscription.site,
        state=TransferState.FAILED,
        file__memberships__dataset_id__in=_dataset_ids(subscription),
    ).update(state=TransferState.QUEUED, attempts=0, excluded_sources=[], next_attempt_at=now, finished_at=None)


def stick_subscriptions(site, file_ids, now):
    """Files that failed for good at `site`: the subscriptions wanting them are stuck (the reason is set
    by the agent's next evaluation, which they are flagged for)."""
    dataset_ids = set(File.objects.filter(pk__in=file_ids).values_list("memberships__dataset_id", flat=True).distinct())
    from .containers import ancestors

    wanting = Subscription.objects.filter(site=site, dataset_id__in=dataset_ids | ancestors(dataset_ids)).exclude(
        state=S.SUSPENDED
    )
    # stuck_at keeps the first time of the streak; the count says how often it got stuck.
    wanting.filter(stuck_at__isnull=True).update(stuck_at=now)
    wanting.exclude(state=S.STUCK).update(stuck_count=F("stuck_count") + 1)
    wanting.update(needs_evaluation=True, state=S.STUCK, modified_at=now)

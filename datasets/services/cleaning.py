"""Cleaning: obsolete dataset replicas are proposed for deletion, approved, then deleted.

`propose` (periodic) finds replicas that are obsolete:
- expired: an `expires_at` in the past (PanDA's own blocks are reaped at once by
  datasets.services.deletion; every other dataset waits for approval here);
- superseded: a newer dataset of the same sample (same series, number, physics, stage and
  format; a higher release tag, numbers compared as numbers, then registered later) is complete at
  the same site.
Replicas protected at the time (a subscription, a live claim) are not proposed.
A data operator approves or rejects them (all the given proposals or none). `execute` deletes the
approved ones from the catalogs and the storage (datasets.services.deletion.remove_replica),
re-checking in the deleting transaction that no live claim and no subscription (of the dataset,
or of a container holding it, at that site) protects the replica; a protected one is not
deleted and says why. Nothing protected is ever deleted, whoever approved it.
"""

import re

from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from pandamon.errors import Conflict, InvalidInput, NotFound

from ..choices import SubscriptionState
from ..models import Claim, Dataset, DatasetReplica, DeletionProposal, Subscription
from ..policy_choices import DeletionReason, ProposalState
from .containers import ancestors
from .deletion import SYSTEM_CATEGORIES, remove_replica
from .policy_admin import check_operator

P = ProposalState
SAMPLE_FIELDS = ("series", "number", "physics", "stage", "format")
OPEN_STATES = (P.PROPOSED, P.APPROVED)
MAX_IDS = 1000


def propose(*, now=None, batch=1000):
    """Add proposals for obsolete replicas not proposed yet; returns how many of each reason."""
    now = now or timezone.now()
    counts = {DeletionReason.EXPIRED: 0, DeletionReason.SUPERSEDED: 0}
    for replica in _expired(now)[:batch]:
        counts[DeletionReason.EXPIRED] += _propose(replica, DeletionReason.EXPIRED,
                                                   f"expired {replica.expires_at:%Y-%m-%d %H:%M} UTC", now)  # fmt: skip
    for replica, newer in _superseded(batch):
        counts[DeletionReason.SUPERSEDED] += _propose(replica, DeletionReason.SUPERSEDED,
                                                      f"superseded by {newer.name}", now)  # fmt: skip
    return {str(key): value for key, value in counts.items()}


def _unproposed():
    """Replicas never proposed, or whose proposals all ended in deletion (it came back since): a rejected or
    protected replica is not proposed again by the periodic pass."""
    proposal = DeletionProposal.objects.filter(dataset_id=OuterRef("dataset_id"), site_id=OuterRef("site_id")).exclude(
        state=P.DELETED
    )
    return DatasetReplica.objects.exclude(Exists(proposal))


def _expired(now):
    return (
        _unproposed()
        .filter(expires_at__lt=now, dataset__erased_at__isnull=True)
        .exclude(dataset__category__in=SYSTEM_CATEGORIES)
        .select_related("dataset", "site")
        .order_by("expires_at")
    )


def _superseded(batch):
    """(older replica, the newer dataset) pairs: the newer one complete at the older one's site."""
    samples = (
        Dataset.objects.filter(erased_at__isnull=True).exclude(format="").exclude(category__in=SYSTEM_CATEGORIES)
        .values(*SAMPLE_FIELDS).annotate(n=Count("id")).filter(n__gt=1).order_by()[:batch]
    )  # fmt: skip
    found = []
    for sample in samples:
        versions = sorted(Dataset.objects.filter(erased_at__isnull=True, **{k: sample[k] for k in SAMPLE_FIELDS}),
                          key=lambda d: (_natural(d.release), d.created_at, d.pk), reverse=True)  # fmt: skip
        newest, older = versions[0], versions[1:]
        complete_at = set(
            DatasetReplica.objects.filter(dataset=newest, complete_at__isnull=False).values_list("site_id", flat=True)
        )
        candidates = _unproposed().filter(dataset__in=older, site_id__in=complete_at).select_related("dataset", "site")
        found += [(replica, newest) for replica in candidates]
    return found


def _natural(tag):
    """A release tag's sort key, numbers as numbers: v11000302 after v11000301, e357 after e356."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.findall(r"\d+|\D+", tag or "")]


def _propose(replica, reason, detail, now):
    """Propose one replica, unless something protects it now (a subscription or a live claim would only make
    the deletion be refused: no point asking an operator)."""
    if protection(replica.dataset_id, replica.site_id, replica, now):
        return 0
    try:
        with transaction.atomic():
            DeletionProposal.objects.create(dataset=replica.dataset, site=replica.site, reason=reason, detail=detail,
                                            bytes=replica.bytes_present, proposed_at=now)  # fmt: skip
    except IntegrityError:  # proposed concurrently
        return 0
    return 1


# -- decisions -----------------------------------------------------------------------------------


@transaction.atomic
def decide(*, user, ids, approve):
    """Approve (or reject) proposals; every one must be waiting for a decision, else nothing changes."""
    check_operator(user, "approve or reject deletions")
    if not isinstance(ids, list) or not ids or len(ids) > MAX_IDS:
        raise InvalidInput(f"give a list of 1 to {MAX_IDS} proposal ids")
    if not all(isinstance(pk, int) and not isinstance(pk, bool) for pk in ids):
        raise InvalidInput("proposal ids are integers")
    proposals = {p.pk: p for p in DeletionProposal.objects.select_for_update().filter(pk__in=ids)}
    missing = [pk for pk in ids if pk not in proposals]
    if missing:
        raise NotFound(f"no deletion proposal {missing[0]}")
    decided = [p for p in proposals.values() if p.state != P.PROPOSED]
    if decided:
        raise Conflict(f"proposal {decided[0].pk} is {decided[0].state}: only proposed ones can be decided")
    DeletionProposal.objects.filter(pk__in=ids).update(
        state=P.APPROVED if approve else P.REJECTED, decided_by=user.username, decided_at=timezone.now()
    )
    if approve:
        from ..tasks import execute_deletions

        transaction.on_commit(execute_deletions.delay)
    return len(ids)


# -- execution -----------------------------------------------------------------------------------


def execute(*, now=None, batch=100):
    """Delete approved replicas, each in its own transaction; returns counts."""
    now = now or timezone.now()
    counts = {"deleted": 0, "protected": 0, "files": 0}
    for pk in list(
        DeletionProposal.objects.filter(state=P.APPROVED).order_by("id").values_list("pk", flat=True)[:batch]
    ):
        with transaction.atomic():
            outcome, files = _execute(pk, now)
        if outcome:
            counts[outcome] += 1
            counts["files"] += files
    return counts


def _execute(pk, now):
    proposal = DeletionProposal.objects.select_for_update().filter(pk=pk, state=P.APPROVED).first()
    if proposal is None:  # executed concurrently
        return None, 0
    replica = DatasetReplica.objects.select_for_update().filter(dataset_id=proposal.dataset_id,
                                                                site_id=proposal.site_id).first()  # fmt: skip
    reason = protection(proposal.dataset_id, proposal.site_id, replica, now)
    if reason:
        _close(proposal, P.PROTECTED, reason, now)
        return "protected", 0
    files = remove_replica(replica, now) if replica is not None else 0
    _close(proposal, P.DELETED, f"{files} file(s) deleted" if replica else "the replica was already gone", now)
    return "deleted", files


def protection(dataset_id, site_id, replica, now):
    """Why a replica must stay ("" when nothing protects it): a live claim, or a subscription at the site."""
    if replica is not None:
        claim = Claim.objects.filter(replica=replica, expires_at__gt=now).order_by("-expires_at").first()
        if claim is not None:
            return f"claimed by {claim.owner_name} until {claim.expires_at:%Y-%m-%d %H:%M} UTC"
    wanting = Subscription.objects.filter(
        Q(dataset_id=dataset_id) | Q(dataset_id__in=ancestors([dataset_id])), site_id=site_id
    ).exclude(state=SubscriptionState.SUSPENDED)
    subscription = wanting.select_related("dataset").first()
    if subscription is not None:
        return f"subscribed at the site (subscription {subscription.pk} of {subscription.dataset.name})"
    return ""


def _close(proposal, state, note, now):
    DeletionProposal.objects.filter(pk=proposal.pk).update(state=state, note=note[:500], executed_at=now)

"""Placement rules at work: which sites a new (or existing) dataset is subscribed to, and why.

`apply_to_new(datasets)` runs inside the catalog's registration transaction
(datasets.services.catalog, .system): every enabled rule whose conditions the dataset
matches plans its targets (datasets.services.topology) and the subscriptions are created
in the same transaction, each naming its rule. Every evaluation leaves a PlacementDecision
with a PlacementTarget per site considered: subscribed, already subscribed, or left out
and why (a paused site, no storage, a preference, a zero share). `apply_retroactively`
does the same for datasets registered before a rule existed; `reevaluate_waiting` retries
the decisions that waited for a dataset's first replica (its home cloud).
"""

import hashlib
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from ..models import Dataset, PlacementDecision, PlacementRule, PlacementTarget, Subscription
from ..naming import FIELDS
from ..policy_choices import DecisionState, TargetKind, TargetOutcome
from ..policy_models import BUCKETS
from .topology import Topology, pattern_matches

Out = TargetOutcome
# PanDA's own blocks are placed by the PanDA data flow, never by rules.
SYSTEM_CATEGORIES = ("dispatch", "destination")
CONDITION_KEYS = ("name", "kind", "category", "owner", *FIELDS)
SUBSCRIBING = (Out.SUBSCRIBED, Out.AGAINST_PREFERENCE)
RETROACTIVE_BATCH = 500


def bucket_of(lfn):
    """A file's stable place in [0, BUCKETS): the share of a spread copy it belongs to."""
    return int(hashlib.md5(lfn.encode(), usedforsecurity=False).hexdigest()[:8], 16) % BUCKETS


@dataclass
class Target:
    site: object
    outcome: str
    start: int = 0
    end: int = BUCKETS
    note: str = ""


@dataclass
class Plan:
    targets: list = field(default_factory=list)
    state: str = DecisionState.PLACED
    note: str = ""


# -- matching ------------------------------------------------------------------------------------


def dataset_values(dataset):
    owner = dataset.owner.username if dataset.owner_id else ""
    return {"name": dataset.name, "kind": dataset.kind, "category": dataset.category, "owner": owner,
            **{name: getattr(dataset, name) for name in FIELDS}}  # fmt: skip


def matches(rule, dataset):
    """Every condition of the rule holds for the dataset (a rule without conditions matches everything)."""
    if dataset.category in SYSTEM_CATEGORIES:
        return False
    values = dataset_values(dataset)
    return all(pattern_matches(pattern, values[key]) for key, pattern in rule.conditions.items())


# -- planning ------------------------------------------------------------------------------------


class Planner:
    """Plans rules on datasets against one Topology; remembers the Tier-1 counts of share rules."""

    def __init__(self, topology=None):
        self.topology = topology or Topology()
        self._share_counts = {}

    def plan(self, rule, dataset):
        handler = {
            TargetKind.TIER1_BY_SHARE: self._tier1_by_share, TargetKind.ALL_TIER1: self._all_tier1,
            TargetKind.HOME_TIER1: self._home_tier1, TargetKind.ALL_TIER2: self._all_tier2,
            TargetKind.SPREAD_TIER2: self._spread_tier2, TargetKind.SITES: self._named_sites,
        }[rule.target]  # fmt: skip
        plan = handler(rule, dataset)
        if plan.state == DecisionState.PLACED and not any(t.outcome in SUBSCRIBING for t in plan.targets):
            plan.state = DecisionState.UNPLACEABLE
            plan.note = plan.note or "no site can take it: " + "; ".join(
                f"{t.site.name}: {Out(t.outcome).label}" for t in plan.targets
            )
        elif plan.state == DecisionState.PLACED and any(_refused(t) for t in plan.targets):
            plan.state = DecisionState.PARTIAL
        return plan

    def _usable(self, rule, site):
        """Why a site cannot receive the rule's data (an outcome), or None."""
        if self.topology.paused(site):
            return Out.SKIPPED_PAUSED
        if not site.storage_endpoint:
            return Out.SKIPPED_NO_STORAGE
        if _weight(rule, site) <= 0:
            return Out.SKIPPED_SHARE
        return None

    def _to(self, rule, site, note=""):
        return Target(site, self._usable(rule, site) or Out.SUBSCRIBED, note=note)

    def _endpoints(self, rule, clouds):
        plan = Plan()
        for cloud in clouds:
            site = self.topology.tier1_endpoint(cloud, rule.media)
            if site is None:
                plan.note = _join(plan.note, f"{cloud} has no {rule.media} Tier-1 endpoint")
                plan.state = DecisionState.PARTIAL
            else:
                plan.targets.append(self._to(rule, site))
        return plan

    def _all_tier1(self, rule, dataset):
        return self._endpoints(rule, self.topology.cloud_names(rule.clouds))

    def _home_tier1(self, rule, dataset):
        home = self.topology.home_cloud(dataset)
        if home is None:
            return Plan(state=DecisionState.WAITING, note="no replica yet: its home cloud is unknown")
        return self._endpoints(rule, [home])

    def _tier1_by_share(self, rule, dataset):
        """The endpoint furthest below its share of the rule's datasets so far (ties by name)."""
        candidates = self._endpoints(rule, self.topology.cloud_names(rule.clouds))
        usable = [t for t in candidates.targets if t.outcome == Out.SUBSCRIBED]
        if not usable:
            return candidates
        counts = self._counts(rule)
        chosen = min(usable, key=lambda t: ((counts.get(t.site.pk, 0) + 1) / _weight(rule, t.site), t.site.name))
        counts[chosen.site.pk] = counts.get(chosen.site.pk, 0) + 1
        total = sum(_weight(rule, t.site) for t in usable)
        chosen.note = f"its share is {_weight(rule, chosen.site) / total:.0%} of the rule's datasets"
        return Plan(targets=[chosen])

    def _counts(self, rule):
        if rule.pk not in self._share_counts:
            rows = Subscription.objects.filter(rule=rule).values_list("site_id").order_by()
            counts = {}
            for (site_id,) in rows:
                counts[site_id] = counts.get(site_id, 0) + 1
            self._share_counts[rule.pk] = counts
        return self._share_counts[rule.pk]

    def _all_tier2(self, rule, dataset):
        plan = Plan()
        for cloud in self.topology.cloud_names(rule.clouds):
            for site in self.topology.tier2s(cloud, rule.media):
                target = self._to(rule, site)
                if target.outcome == Out.SUBSCRIBED and self.topology.wants(site, dataset) is False:
                    target.outcome, target.note = Out.SKIPPED_PREFERENCE, _preference_note(self.topology, site)
                plan.targets.append(target)
        return plan

    def _spread_tier2(self, rule, dataset):
        clouds = list(rule.clouds)
        if not clouds:
            home = self.topology.home_cloud(dataset)
            if home is None:
                return Plan(state=DecisionState.WAITING, note="no replica yet: its home cloud is unknown")
            clouds = [home]
        plan = Plan()
        for cloud in clouds:
            self._spread_in(rule, dataset, cloud, plan)
        return plan

    def _spread_in(self, rule, dataset, cloud, plan):
        """One complete copy over the cloud's usable Tier-2s: those wanting the data (or indifferent) take
        it; only when none does are sites preferring other data used (and that is recorded)."""
        targets = [self._to(rule, site) for site in self.topology.tier2s(cloud, rule.media)]
        usable = [t for t in targets if t.outcome == Out.SUBSCRIBED]
        willing = [t for t in usable if self.topology.wants(t.site, dataset) is not False]
        for target in usable:
            if target not in willing:
                target.outcome = Out.SKIPPED_PREFERENCE if willing else Out.AGAINST_PREFERENCE
                target.note = _preference_note(self.topology, target.site)
        holders = willing or usable
        if not holders:
            plan.note = _join(plan.note, f"{cloud}: no Tier-2 can hold a share")
            plan.state = DecisionState.PARTIAL
        _assign_shares(rule, holders)
        plan.targets.extend(targets)

    def _named_sites(self, rule, dataset):
        plan = Plan()
        for name in rule.sites:
            site = self.topology.by_name.get(name)
            if site is None:
                plan.note = _join(plan.note, f"unknown site {name}")
                plan.state = DecisionState.PARTIAL
            else:
                plan.targets.append(self._to(rule, site))
        return plan


def _weight(rule, site):
    """The site's weight in the rule's shares: by site name, else by cloud name, else 1."""
    shares = rule.shares or {}
    return float(shares.get(site.name, shares.get(site.cloud.name, 1)))


def _assign_shares(rule, holders):
    """Consecutive bucket ranges proportional to the weights; together they cover [0, BUCKETS)."""
    total = sum(_weight(rule, t.site) for t in holders)
    start, cumulative = 0, 0.0
    for index, target in enumerate(sorted(holders, key=lambda t: t.site.name)):
        cumulative += _weight(rule, target.site)
        end = BUCKETS if index == len(holders) - 1 else round(BUCKETS * cumulative / total)
        target.start, target.end = start, end
        target.note = _join(target.note, f"holds {(end - start) / BUCKETS:.1%} of the files")
        start = end


def _preference_note(topology, site):
    wanted = ", ".join(f"{p.kind} {p.pattern}" for p in topology.preferences.get(site.pk, []))
    return f"prefers {wanted}"[:300]


def _refused(target):
    return target.outcome in (Out.SKIPPED_PAUSED, Out.SKIPPED_NO_STORAGE)


def _join(first, second):
    return f"{first}; {second}" if first else second


# -- recording -----------------------------------------------------------------------------------


def enabled_rules():
    return list(PlacementRule.objects.filter(enabled=True).order_by("order", "id"))


def apply_to_new(datasets, *, rules=None, now=None):
    """Evaluate the enabled rules on datasets just registered (inside the caller's transaction)."""
    datasets = [d for d in datasets if d.category not in SYSTEM_CATEGORIES]
    if not datasets:  # PanDA's blocks alone: not even a query for the rules
        return {"decisions": 0, "subscriptions": 0}
    rules = enabled_rules() if rules is None else rules
    if not rules:
        return {"decisions": 0, "subscriptions": 0}
    return _apply(rules, datasets, Planner(), now or timezone.now())


def _apply(rules, datasets, planner, now):
    pairs = [(rule, dataset) for dataset in datasets for rule in rules if matches(rule, dataset)]
    if not pairs:
        return {"decisions": 0, "subscriptions": 0}
    existing = set(
        Subscription.objects.filter(dataset_id__in={d.pk for _, d in pairs}).values_list("dataset_id", "site_id")
    )
    new_subscriptions, decisions = [], []
    for rule, dataset in pairs:
        plan = planner.plan(rule, dataset)
        for target in plan.targets:
            if target.outcome in SUBSCRIBING and (dataset.pk, target.site.pk) in existing:
                target.outcome = Out.EXISTING
            elif target.outcome in SUBSCRIBING:
                existing.add((dataset.pk, target.site.pk))
                new_subscriptions.append(_subscription(rule, dataset, target))
        decisions.append((rule, dataset, plan))
    Subscription.objects.bulk_create(new_subscriptions, ignore_conflicts=True)
    _save_decisions(decisions, now)
    if new_subscriptions:
        from .subscriptions import _queue_evaluation

        transaction.on_commit(_queue_evaluation)
    return {"decisions": len(decisions), "subscriptions": len(new_subscriptions)}


def _subscription(rule, dataset, target):
    return Subscription(
        dataset=dataset, site=target.site, owner_name=f"rule:{rule.name}"[:150], activity=rule.activity,
        priority=rule.priority, rule=rule, share_start=target.start, share_end=target.end,
    )  # fmt: skip


def _save_decisions(decisions, now):
    """Replace the decisions (and their targets) of these (rule, dataset) pairs."""
    for rule, dataset, _ in decisions:
        PlacementDecision.objects.filter(rule=rule, dataset=dataset).delete()
    rows = PlacementDecision.objects.bulk_create(
        [
            PlacementDecision(
                rule=rule, dataset=dataset, state=plan.state, note=plan.note[:500], evaluated_at=now,
                n_subscribed=sum(1 for t in plan.targets if t.outcome in SUBSCRIBING),
                against_preferences=any(t.outcome == Out.AGAINST_PREFERENCE for t in plan.targets),
            )
            for rule, dataset, plan in decisions
        ]
    )  # fmt: skip
    PlacementTarget.objects.bulk_create(
        [
            PlacementTarget(decision=row, site=t.site, outcome=t.outcome, share_start=t.start, share_end=t.end,
                            note=t.note[:300])
            for row, (_, _, plan) in zip(rows, decisions, strict=True)
            for t in plan.targets
        ]
    )  # fmt: skip


def apply_retroactively(*, rule_ids=None, since=None, now=None, batch=RETROACTIVE_BATCH):
    """Evaluate rules on existing datasets they have not decided yet (or that waited), a batch per transaction.

    `since`: only datasets registered after it. Returns counts."""
    now = now or timezone.now()
    rules = [r for r in enabled_rules() if rule_ids is None or r.pk in rule_ids]
    counts = {"datasets": 0, "decisions": 0, "subscriptions": 0}
    if not rules:
        return counts
    datasets = Dataset.objects.filter(erased_at__isnull=True).exclude(category__in=SYSTEM_CATEGORIES)
    if since is not None:
        datasets = datasets.filter(created_at__gte=since)
    planner, after = Planner(), 0
    while True:
        chunk = list(datasets.filter(pk__gt=after).select_related("owner").order_by("pk")[:batch])
        if not chunk:
            break
        after = chunk[-1].pk
        with transaction.atomic():
            result = _apply_undecided(rules, chunk, planner, now)
        counts["datasets"] += len(chunk)
        counts["decisions"] += result["decisions"]
        counts["subscriptions"] += result["subscriptions"]
    PlacementRule.objects.filter(pk__in=[r.pk for r in rules]).update(applied_at=now)
    return counts


def _apply_undecided(rules, datasets, planner, now):
    """Per rule, the datasets it has no final decision on (none, or one that waited)."""
    decided = set(
        PlacementDecision.objects.filter(dataset__in=datasets, rule__in=rules)
        .exclude(state=DecisionState.WAITING)
        .values_list("rule_id", "dataset_id")
    )
    totals = {"decisions": 0, "subscriptions": 0}
    for rule in rules:
        todo = [d for d in datasets if (rule.pk, d.pk) not in decided]
        result = _apply([rule], todo, planner, now) if todo else totals.fromkeys(totals, 0)
        for key in totals:
            totals[key] += result[key]
    return totals


def reevaluate_waiting(*, now=None, batch=200):
    """Decisions that waited for a dataset's first replica, evaluated again (the periodic pass)."""
    now = now or timezone.now()
    waiting = list(
        PlacementDecision.objects.filter(state=DecisionState.WAITING, rule__enabled=True)
        .select_related("rule", "dataset__owner")
        .order_by("evaluated_at", "id")[:batch]
    )
    planner, counts = Planner(), {"decisions": 0, "subscriptions": 0}
    for decision in waiting:
        with transaction.atomic():
            result = _apply([decision.rule], [decision.dataset], planner, now)
        counts["decisions"] += result["decisions"]
        counts["subscriptions"] += result["subscriptions"]
    return counts

"""Reads of the data distribution policy: rules with their outcomes, decisions, Tier-2 preferences."""

from django.db.models import Count, Q

from pandamon.errors import NotFound
from sites.models import Site

from .choices import SubscriptionState
from .models import PlacementDecision, PlacementRule, PlacementTarget, SitePreference, Subscription
from .policy_choices import DecisionState, TargetOutcome
from .services.topology import Topology

RULE_COLUMNS = ("id", "name", "description", "enabled", "order", "conditions", "target", "media", "clouds", "sites",
                "shares", "activity", "priority", "created_by_name", "created_at", "modified_at", "applied_at")  # fmt: skip
DECISION_COLUMNS = ("id", "rule__name", "dataset__name", "state", "note", "n_subscribed", "against_preferences",
                    "evaluated_at")  # fmt: skip
TARGET_COLUMNS = ("id", "decision__rule__name", "decision__dataset__name", "site__name", "outcome", "share_start",
                  "share_end", "note", "decision__evaluated_at")  # fmt: skip
PREFERENCE_COLUMNS = ("id", "site__name", "kind", "pattern", "created_by_name", "created_at")
COULD_NOT = (TargetOutcome.AGAINST_PREFERENCE, TargetOutcome.SKIPPED_PREFERENCE)


def decision_counts(rule_ids):
    """{rule id: {state: n}} of the rules' decisions (every state present)."""
    counts = {pk: dict.fromkeys(DecisionState.values, 0) for pk in rule_ids}
    rows = (
        PlacementDecision.objects.filter(rule_id__in=rule_ids).values_list("rule_id", "state").annotate(n=Count("id"))
    )
    for rule_id, state, n in rows.order_by():
        counts[rule_id][state] = n
    return counts


def subscription_counts(rule_ids):
    """{rule id: {state: n}} of the subscriptions the rules made."""
    counts = {pk: dict.fromkeys(SubscriptionState.values, 0) for pk in rule_ids}
    rows = Subscription.objects.filter(rule_id__in=rule_ids).values_list("rule_id", "state").annotate(n=Count("id"))
    for rule_id, state, n in rows.order_by():
        counts[rule_id][state] = n
    return counts


def with_rule_counts(rows):
    ids = [row["id"] for row in rows]
    decisions, subscriptions = decision_counts(ids), subscription_counts(ids)
    for row in rows:
        row["decisions"], row["subscriptions"] = decisions[row["id"]], subscriptions[row["id"]]
    return rows


def rule_detail(pk):
    rule = PlacementRule.objects.filter(pk=pk).values(*RULE_COLUMNS).first()
    if rule is None:
        raise NotFound(f"no placement rule {pk}")
    with_rule_counts([rule])
    rule["by_site"] = targets_by_site(Q(decision__rule_id=pk))
    return rule


def targets_by_site(condition):
    """[{site, outcome: n, ...}] of the decisions' targets, by site name."""
    rows = (
        PlacementTarget.objects.filter(condition)
        .values_list("site__name", "outcome")
        .annotate(n=Count("id"))
        .order_by("site__name")
    )
    by_site = {}
    for site, outcome, n in rows:
        by_site.setdefault(site, {"site": site, **dict.fromkeys(TargetOutcome.values, 0)})[outcome] = n
    return list(by_site.values())


def preference_overview():
    """Per site with preferences or targets left out / placed against them: its preferences and how often the
    policy honoured them or could not (the targets of every decision)."""
    preferences = {}
    for row in SitePreference.objects.values(*PREFERENCE_COLUMNS).order_by("site__name", "kind", "pattern"):
        preferences.setdefault(row["site__name"], []).append(row)
    outcomes = {row["site"]: row for row in targets_by_site(Q())}
    topology = Topology()
    names = sorted(set(preferences) | {name for name, row in outcomes.items() if any(row[o] for o in COULD_NOT)})
    sites = {site.name: site for site in Site.objects.filter(name__in=names).select_related("cloud")}
    return [
        {"site": name, "cloud": sites[name].cloud.name, "tier": sites[name].tier,
         "tier1_endpoint": topology.is_tier1_endpoint(sites[name]), "preferences": preferences.get(name, []),
         "outcomes": outcomes.get(name, {o: 0 for o in TargetOutcome.values})}
        for name in names
    ]  # fmt: skip


def tier2_names():
    topology = Topology()
    return [site.name for site in topology.sites if not topology.is_tier1_endpoint(site)]

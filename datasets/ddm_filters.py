"""FilterSets of the DDM policy and operations pages and API (the one grammar: `*`, `|`, `!`)."""

import re

from pandamon.grammar import ChoiceFilter, GrammarFilterSet, TextFilter

from .choices import Activity
from .filters import NameFilter, SiteNameFilter
from .models import DeletionProposal, PlacementDecision, PlacementRule, PlacementTarget, SitePreference
from .policy_choices import DecisionState, DeletionReason, PreferenceKind, ProposalState, TargetKind, TargetOutcome

RULE_NAME_TEXT = "rule names (letters, digits, _ . -) and *"
RULE_TERM = re.compile(r"^[A-Za-z0-9_.\-*]{1,64}$")


class RuleNameFilter(TextFilter):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, allowed=RULE_TERM, allowed_text=RULE_NAME_TEXT, **kwargs)


class PlacementRuleFilterSet(GrammarFilterSet):
    name = RuleNameFilter()
    target = ChoiceFilter(choices=TargetKind.choices)
    activity = ChoiceFilter(choices=Activity.choices)

    facet_fields = ("target", "activity")
    sort_keys = {"order": ("order", "id"), "id": ("id",)}
    default_sort = "order"

    class Meta:
        model = PlacementRule
        fields = []


class PlacementDecisionFilterSet(GrammarFilterSet):
    rule = RuleNameFilter(field_name="rule__name")
    dataset = NameFilter(field_name="dataset__name", help_text="Dataset name or pattern.")
    state = ChoiceFilter(choices=DecisionState.choices)

    window_field = "evaluated_at"
    deep_params = ("dataset",)
    facet_fields = ("state", "rule")
    sort_keys = {"id": ("id",)}
    default_sort = "-id"

    class Meta:
        model = PlacementDecision
        fields = []


class PlacementTargetFilterSet(GrammarFilterSet):
    """Sites considered by decisions: where the policy placed data, and where it could not."""

    site = SiteNameFilter(field_name="site__name")
    outcome = ChoiceFilter(choices=TargetOutcome.choices)
    rule = RuleNameFilter(field_name="decision__rule__name")
    dataset = NameFilter(field_name="decision__dataset__name")

    window_field = "decision__evaluated_at"
    facet_fields = ("outcome", "site", "rule")
    sort_keys = {"id": ("id",)}
    default_sort = "-id"

    class Meta:
        model = PlacementTarget
        fields = []


class SitePreferenceFilterSet(GrammarFilterSet):
    site = SiteNameFilter(field_name="site__name")
    kind = ChoiceFilter(choices=PreferenceKind.choices)

    facet_fields = ("kind", "site")
    sort_keys = {"site": ("site__name", "kind", "pattern", "id")}
    default_sort = "site"

    class Meta:
        model = SitePreference
        fields = []


class DeletionProposalFilterSet(GrammarFilterSet):
    dataset = NameFilter(field_name="dataset__name")
    site = SiteNameFilter(field_name="site__name")
    state = ChoiceFilter(choices=ProposalState.choices)
    reason = ChoiceFilter(choices=DeletionReason.choices)

    window_field = "proposed_at"
    deep_params = ("dataset",)
    facet_fields = ("state", "reason", "site")
    sort_keys = {"id": ("id",)}
    default_sort = "-id"

    class Meta:
        model = DeletionProposal
        fields = []

"""The data distribution policy: placement rules, their decisions, and what Tier-2s prefer.

A PlacementRule subscribes datasets matching its conditions to sites chosen by its
target (one Tier-1 by share, every Tier-1, the home Tier-1, every Tier-2, one copy
spread over a cloud's Tier-2s, or named sites). Each evaluation of a rule on a
dataset is one PlacementDecision with a PlacementTarget per site considered, so a
page can say where the rule placed the data and where it could not (docs/ddm-policy.md).
"""

from django.conf import settings
from django.db import models

from .choices import Activity
from .policy_choices import DecisionState, Media, PreferenceKind, TargetKind, TargetOutcome

# A file's bucket (datasets.services.policy.bucket_of: a stable hash of its LFN) is in [0, BUCKETS);
# a subscription holding a share of a dataset wants the files whose bucket is in [share_start, share_end).
BUCKETS = 1000


class PlacementRule(models.Model):
    name = models.CharField(max_length=64, unique=True)
    description = models.CharField(max_length=300, blank=True)
    enabled = models.BooleanField(default=True)
    order = models.PositiveSmallIntegerField(default=100, help_text="Rules are evaluated in this order.")
    conditions = models.JSONField(
        default=dict, blank=True,
        help_text='What a dataset must match, e.g. {"category": "mc|csc", "format": "AOD", "name": "mc11.*"}: '
        "keys name, kind, category, owner and the name fields (series, number, physics, stage, format, "
        "release); values are patterns (* wildcards, a|b or, !a not).",
    )  # fmt: skip
    target = models.CharField(max_length=16, choices=TargetKind.choices)
    media = models.CharField(max_length=4, choices=Media.choices, default=Media.ANY)
    clouds = models.JSONField(default=list, blank=True, help_text="Clouds the target is limited to (empty = all).")
    sites = models.JSONField(default=list, blank=True, help_text="For target 'sites': the sites.")
    shares = models.JSONField(
        default=dict, blank=True, help_text="{site: weight}: a site's share of the rule's data (default 1; 0 = none)."
    )
    activity = models.CharField(max_length=12, choices=Activity.choices, default=Activity.PRODUCTION)
    priority = models.PositiveSmallIntegerField(default=3, help_text="1 (lowest) to 5 (highest).")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_by_name = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    modified_at = models.DateTimeField(auto_now=True)
    applied_at = models.DateTimeField(null=True, blank=True, help_text="Last retroactive run.")

    class Meta:
        ordering = ["order", "id"]

    def __str__(self):
        return self.name


class PlacementDecision(models.Model):
    """The outcome of a rule on a dataset (the latest evaluation)."""

    rule = models.ForeignKey(PlacementRule, on_delete=models.CASCADE, related_name="decisions")
    dataset = models.ForeignKey("datasets.Dataset", on_delete=models.CASCADE, related_name="placement_decisions")
    state = models.CharField(max_length=12, choices=DecisionState.choices)
    note = models.CharField(max_length=500, blank=True)
    n_subscribed = models.PositiveSmallIntegerField(default=0)
    against_preferences = models.BooleanField(default=False, help_text="Placed at a site that prefers other data.")
    created_at = models.DateTimeField(auto_now_add=True)
    evaluated_at = models.DateTimeField()

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["rule", "dataset"], name="placementdecision_unique")]
        indexes = [
            models.Index(fields=["state", "id"], name="placementdecision_state"),
            models.Index(fields=["dataset"], name="placementdecision_dataset"),
        ]

    def __str__(self):
        return f"{self.rule_id} on {self.dataset_id}: {self.state}"


class PlacementTarget(models.Model):
    """One site a decision considered: subscribed, already subscribed, or left out and why."""

    decision = models.ForeignKey(PlacementDecision, on_delete=models.CASCADE, related_name="targets")
    site = models.ForeignKey("sites.Site", on_delete=models.CASCADE, related_name="+")
    outcome = models.CharField(max_length=20, choices=TargetOutcome.choices)
    share_start = models.PositiveSmallIntegerField(default=0)
    share_end = models.PositiveSmallIntegerField(default=BUCKETS)
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["decision", "site"]
        indexes = [models.Index(fields=["site", "outcome"], name="placementtarget_site")]

    def __str__(self):
        return f"{self.site_id}: {self.outcome}"


class SitePreference(models.Model):
    """A category, format or dataset (pattern) a Tier-2 wants. A site with none takes anything."""

    site = models.ForeignKey("sites.Site", on_delete=models.CASCADE, related_name="data_preferences")
    kind = models.CharField(max_length=8, choices=PreferenceKind.choices)
    pattern = models.CharField(max_length=255, help_text="The value, or a pattern with * wildcards.")
    created_by_name = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["site", "kind", "pattern"]
        constraints = [
            models.UniqueConstraint(fields=["site", "kind", "pattern"], name="sitepreference_unique"),
        ]

    def __str__(self):
        return f"{self.site_id} wants {self.kind} {self.pattern}"

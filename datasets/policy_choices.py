"""Choices of the data distribution policy and DDM operations (docs/ddm-policy.md)."""

from django.db import models


class TargetKind(models.TextChoices):
    TIER1_BY_SHARE = "tier1_by_share", "one Tier-1, chosen so that each receives its share of the rule's datasets"
    ALL_TIER1 = "all_tier1", "every Tier-1 (of the rule's clouds, or all)"
    HOME_TIER1 = "home_tier1", "the Tier-1 of the cloud where the dataset was produced (its first primary replica)"
    ALL_TIER2 = "all_tier2", "every Tier-2 (of the rule's clouds, or all) that does not prefer other data"
    SPREAD_TIER2 = "spread_tier2", "one copy spread over a cloud's Tier-2s: each holds a share of the files"
    SITES = "sites", "the sites the rule names"


class Media(models.TextChoices):
    ANY = "any", "any storage"
    DISK = "disk", "disk"
    TAPE = "tape", "tape (archival)"


class DecisionState(models.TextChoices):
    PLACED = "placed", "placed: every target is subscribed"
    PARTIAL = "partial", "partial: some targets could not be subscribed (see their notes)"
    WAITING = "waiting", "waiting: the dataset has no replica yet, so its home cloud is unknown; evaluated again"
    UNPLACEABLE = "unplaceable", "unplaceable: no site can take it under this rule (see the notes)"


class TargetOutcome(models.TextChoices):
    SUBSCRIBED = "subscribed", "subscribed by the rule"
    EXISTING = "existing", "already subscribed (by the rule earlier, a user or PanDA)"
    AGAINST_PREFERENCE = "against_preference", "subscribed although the site prefers other data (the shares needed it)"
    SKIPPED_PREFERENCE = "skipped_preference", "left out: the site prefers other data"
    SKIPPED_PAUSED = "skipped_paused", "left out: the site is paused for data distribution"
    SKIPPED_NO_STORAGE = "skipped_no_storage", "left out: the site has no storage endpoint"
    SKIPPED_SHARE = "skipped_share", "left out: its share in the rule is 0"


class PreferenceKind(models.TextChoices):
    CATEGORY = "category", "a dataset category (mc, csc, conditions, ...)"
    FORMAT = "format", "a data format (AOD, ESD, TAG, ...)"
    DATASET = "dataset", "a dataset name or pattern (* wildcards)"


class ProposalState(models.TextChoices):
    PROPOSED = "proposed", "proposed: waits for a data operator's approval"
    APPROVED = "approved", "approved: deleted by the next cleaning pass"
    REJECTED = "rejected", "rejected by a data operator: kept"
    DELETED = "deleted", "deleted from the catalogs and the storage"
    PROTECTED = "protected", "not deleted: a live claim or a subscription protects it (see the note)"


class DeletionReason(models.TextChoices):
    EXPIRED = "expired", "its lifetime at the site is over"
    SUPERSEDED = "superseded", "a newer version (higher release tag) of the same sample is complete at the site"
    DISPATCH = "dispatch", "a PanDA dispatch block whose jobs are all over"


class ChannelHealth(models.TextChoices):
    HEALTHY = "healthy", "healthy: transfers are routed through it"
    QUIET = "quiet", "quiet: too few attempts in the window to judge"
    FAILING = "failing", "failing: most recent attempts failed; sources behind it are used last (rerouted)"
    PAUSED = "paused", "paused by a data operator: never used as a source channel"

"""DDM operations: activity priorities, per-site data settings, channel controls, deletion proposals."""

from django.db import models
from django.db.models import Q

from .choices import Activity
from .policy_choices import DeletionReason, Media, ProposalState


class ActivityPriority(models.Model):
    """The rank of an activity in the transfer queue: rank 1 is claimed first (ties share a rank)."""

    activity = models.CharField(max_length=12, choices=Activity.choices, unique=True)
    rank = models.PositiveSmallIntegerField()
    updated_by_name = models.CharField(max_length=150, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["rank", "activity"]

    def __str__(self):
        return f"{self.activity}: rank {self.rank}"


class SiteDDMConfig(models.Model):
    """What data management knows of a site beyond sites.Site: its media, pause, and its user area."""

    site = models.OneToOneField("sites.Site", on_delete=models.CASCADE, primary_key=True, related_name="ddm")
    media = models.CharField(
        max_length=4, choices=Media.choices, blank=True,
        help_text="Empty = from the name (…TAPE is tape, otherwise disk).",
    )  # fmt: skip
    paused = models.BooleanField(default=False, help_text="No transfer to or from the site; rules leave it out.")
    paused_reason = models.CharField(max_length=300, blank=True)
    paused_by = models.CharField(max_length=150, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    user_area_quota_bytes = models.BigIntegerField(
        null=True, blank=True, help_text="Size of the site's user area (user-activity transfers); empty = no limit."
    )
    user_area_used_bytes = models.BigIntegerField(
        default=0, help_text="Bytes in the user area: added when copies land, recounted periodically."
    )
    user_area_counted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "site DDM settings"
        verbose_name_plural = "site DDM settings"

    def __str__(self):
        return f"DDM settings of {self.site_id}"


class ChannelControl(models.Model):
    """An operator's pause of a channel (source site -> destination site)."""

    source = models.ForeignKey("sites.Site", on_delete=models.CASCADE, related_name="+")
    destination = models.ForeignKey("sites.Site", on_delete=models.CASCADE, related_name="+")
    paused = models.BooleanField(default=True)
    reason = models.CharField(max_length=300, blank=True)
    changed_by = models.CharField(max_length=150)
    changed_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "destination"], name="channelcontrol_unique")]

    def __str__(self):
        return f"{self.source_id} -> {self.destination_id} ({'paused' if self.paused else 'open'})"


class DeletionProposal(models.Model):
    """An obsolete dataset replica proposed for deletion; deleted once approved, unless protected then."""

    dataset = models.ForeignKey("datasets.Dataset", on_delete=models.CASCADE, related_name="deletion_proposals")
    site = models.ForeignKey("sites.Site", on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=12, choices=DeletionReason.choices)
    detail = models.CharField(max_length=300, blank=True)
    state = models.CharField(max_length=10, choices=ProposalState.choices, default=ProposalState.PROPOSED)
    bytes = models.BigIntegerField(default=0, help_text="Bytes of the replica when proposed.")
    proposed_at = models.DateTimeField()
    decided_by = models.CharField(max_length=150, blank=True, help_text="Operator, or 'system' (automatic).")
    decided_at = models.DateTimeField(null=True, blank=True)
    executed_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=500, blank=True, help_text="What happened when it was executed.")

    class Meta:
        ordering = ["-id"]
        constraints = [
            # One open proposal per replica; decided ones stay as history.
            models.UniqueConstraint(
                fields=["dataset", "site"], condition=Q(state__in=("proposed", "approved")),
                name="deletionproposal_open_unique",
            ),
        ]  # fmt: skip
        indexes = [models.Index(fields=["state", "id"], name="deletionproposal_state")]

    def __str__(self):
        return f"delete {self.dataset_id} at {self.site_id} ({self.state})"

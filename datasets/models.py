"""The DQ2-style catalog: datasets (versions, containers, datablocks), files and their replicas.

Completeness of a dataset at a site is maintained, not recomputed: DatasetReplica
counts the files of the dataset present at the site and is updated in the same
transaction that adds file replicas or files (datasets.services.replicas).
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from sites.models import Site

from .choices import (
    Activity,
    CallbackKind,
    CallbackState,
    DatasetKind,
    DatasetState,
    ReplicaState,
    SubscriptionState,
    TransferState,
    VersionState,
)


class Dataset(models.Model):
    name = models.CharField(max_length=255, unique=True)
    duid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, verbose_name="DUID")
    kind = models.CharField(max_length=10, choices=DatasetKind.choices, default=DatasetKind.DATASET)
    state = models.CharField(max_length=8, choices=DatasetState.choices, default=DatasetState.OPEN)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="datasets"
    )
    latest_version = models.PositiveIntegerField(default=1, help_text="0 for containers.")
    n_files = models.PositiveIntegerField(default=0, help_text="Files in the latest version.")
    bytes = models.BigIntegerField(default=0, help_text="Bytes in the latest version.")
    created_at = models.DateTimeField(auto_now_add=True)
    modified_at = models.DateTimeField(auto_now=True)
    erased_at = models.DateTimeField(null=True, blank=True, help_text="Soft-erased; purged later.")
    archived_at = models.DateTimeField(
        null=True, blank=True, help_text="When every file it held last reached its archival site (job outputs)."
    )
    # Name fields, parsed once so the browser can facet on them.
    series = models.CharField(max_length=64, blank=True)
    number = models.CharField(max_length=64, blank=True)
    physics = models.CharField(max_length=64, blank=True)
    stage = models.CharField(max_length=64, blank=True)
    format = models.CharField(max_length=64, blank=True)
    release = models.CharField(max_length=64, blank=True)
    category = models.CharField(max_length=16, default="other")

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(fields=["category", "name"], name="dataset_category_name"),
            models.Index(fields=["series", "stage", "format"], name="dataset_name_fields"),
            models.Index(fields=["owner", "name"], name="dataset_owner_name"),
        ]

    def __str__(self):
        return self.name


class DatasetVersion(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    vuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, verbose_name="VUID")
    state = models.CharField(max_length=6, choices=VersionState.choices, default=VersionState.OPEN)
    n_files = models.PositiveIntegerField(default=0)
    bytes = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["dataset", "number"]
        constraints = [models.UniqueConstraint(fields=["dataset", "number"], name="datasetversion_unique_number")]

    def __str__(self):
        return f"{self.dataset.name} v{self.number}"


class File(models.Model):
    lfn = models.CharField(max_length=255, unique=True, verbose_name="LFN")
    guid = models.UUIDField(unique=True, verbose_name="GUID")
    fsize = models.BigIntegerField()
    adler32 = models.CharField(max_length=8)
    md5 = models.CharField(max_length=32, blank=True)
    events = models.BigIntegerField(null=True, blank=True)
    origin_dataset = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="originated_files",
        help_text="The dataset the file was first registered in.",
    )  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.lfn


class DatasetFile(models.Model):
    """A file in a dataset. Versions only add files: version v holds the rows with version_added <= v."""

    # No single-column FK indexes: datasetfile_unique leads with dataset and datasetfile_file covers
    # file; every registered file writes one row here, so each extra index is paid per file.
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="contents", db_index=False)
    file = models.ForeignKey(File, on_delete=models.CASCADE, related_name="memberships", db_index=False)
    version_added = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["dataset", "file"], name="datasetfile_unique")]
        indexes = [
            models.Index(fields=["dataset", "version_added", "file"], name="datasetfile_version"),
            models.Index(fields=["file"], name="datasetfile_file"),
        ]

    def __str__(self):
        return f"{self.file_id} in {self.dataset_id} (v{self.version_added})"


class ContainerMember(models.Model):
    container = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="members")
    member = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="containers")
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["container", "member"], name="containermember_unique"),
            models.CheckConstraint(condition=~Q(container=F("member")), name="containermember_not_self"),
        ]

    def __str__(self):
        return f"{self.member_id} in container {self.container_id}"


class FileReplica(models.Model):
    """The local replica catalog of a site: where a file is stored there."""

    # Indexed by filereplica_unique (file, site) and filereplica_site (site, file) only.
    file = models.ForeignKey(File, on_delete=models.CASCADE, related_name="replicas", db_index=False)
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="file_replicas", db_index=False)
    pfn = models.CharField(max_length=1000, verbose_name="PFN")
    state = models.CharField(max_length=10, choices=ReplicaState.choices, default=ReplicaState.AVAILABLE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["file", "site"], name="filereplica_unique")]
        indexes = [models.Index(fields=["site", "file"], name="filereplica_site")]

    def __str__(self):
        return f"{self.file_id} at {self.site_id}"


class SiteReplicaTotals(models.Model):
    """What a site holds by its replica catalog, each file once: a file in several datasets is one
    replica there, though every dataset replica counts it. Kept by the two functions that add and
    remove file replicas (datasets.services.replicas), under the site's lock, so pages read one row
    per site instead of summing millions of file replicas."""

    site = models.OneToOneField(Site, primary_key=True, on_delete=models.CASCADE, related_name="replica_totals")
    files = models.BigIntegerField(default=0)
    bytes = models.BigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "site replica totals"

    def __str__(self):
        return f"{self.site_id}: {self.files} files, {self.bytes} bytes"


class DatasetReplica(models.Model):
    """The location catalog: how much of a dataset's latest version a site holds."""

    # Indexed by datasetreplica_unique (dataset, site) and datasetreplica_site (site, dataset) only.
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="replicas", db_index=False)
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="dataset_replicas", db_index=False)
    files_present = models.PositiveIntegerField(default=0)
    bytes_present = models.BigIntegerField(default=0)
    complete_at = models.DateTimeField(
        null=True, blank=True, help_text="When the site last came to hold every file; cleared when files are added."
    )
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Deleted after this unless claimed or subscribed (empty = kept)."
    )
    secondary = models.BooleanField(
        default=False,
        help_text="Made by transfers rather than registered: protects its files from deletion only while "
        "subscribed or claimed.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    modified_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["dataset", "site"], name="datasetreplica_unique")]
        indexes = [models.Index(fields=["site", "dataset"], name="datasetreplica_site")]

    def __str__(self):
        return f"{self.dataset_id} at {self.site_id} ({self.files_present} files)"


class Claim(models.Model):
    """A user's or system's claim on a dataset replica: while live, the replica is kept."""

    replica = models.ForeignKey(DatasetReplica, on_delete=models.CASCADE, related_name="claims")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    owner_name = models.CharField(max_length=150, help_text="User name or system component.")
    reason = models.CharField(max_length=200, blank=True)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["replica", "expires_at"], name="claim_replica_expiry")]

    def __str__(self):
        return f"claim by {self.owner_name} until {self.expires_at:%Y-%m-%d %H:%M}"


class Subscription(models.Model):
    """A site asks to hold a dataset, a container (all its datasets, present and future) or a datablock.

    The subscription agent compares what the site should hold with what it holds and queues
    transfers of what is missing; catalog changes (new files, new versions, new container
    members) flag the subscriptions they concern for the next agent cycle.
    """

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="subscriptions")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="subscriptions")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    owner_name = models.CharField(max_length=150, help_text="User name or system component.")
    activity = models.CharField(max_length=12, choices=Activity.choices, default=Activity.USER)
    priority = models.PositiveSmallIntegerField(default=3, help_text="1 (lowest) to 5 (highest).")
    state = models.CharField(max_length=10, choices=SubscriptionState.choices, default=SubscriptionState.ACTIVE)
    reason = models.CharField(max_length=500, blank=True, help_text="Why it is stuck or suspended.")
    needs_evaluation = models.BooleanField(default=True, help_text="Set by catalog changes; cleared by the agent.")
    evaluated_at = models.DateTimeField(null=True, blank=True)
    stuck_at = models.DateTimeField(
        null=True, blank=True, help_text="First time stuck in the current streak (kept through repairs)."
    )
    stuck_count = models.PositiveIntegerField(default=0, help_text="How many times it got stuck.")
    repaired_at = models.DateTimeField(null=True, blank=True, help_text="Last time its failed transfers were requeued.")
    done_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    modified_at = models.DateTimeField(auto_now=True)
    # Made by a placement rule (datasets.policy_models); empty = by a user or PanDA.
    rule = models.ForeignKey(
        "datasets.PlacementRule", null=True, blank=True, on_delete=models.SET_NULL, related_name="subscriptions"
    )
    # A share of a dataset spread over several sites: the files whose bucket (a stable hash of the LFN,
    # 0..999) is in [share_start, share_end). The default is every file.
    share_start = models.PositiveSmallIntegerField(default=0)
    share_end = models.PositiveSmallIntegerField(default=1000)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["dataset", "site"], name="subscription_unique")]
        indexes = [
            models.Index(fields=["site", "state"], name="subscription_site_state"),
            # Pages: stuck / active ones whatever their age, done ones by when they were done.
            models.Index(fields=["state", "id"], name="subscription_state"),
            models.Index(fields=["done_at"], name="subscription_done_at"),
            # The agent's work list stays as small as the set of subscriptions with news.
            models.Index(fields=["id"], name="subscription_to_evaluate", condition=Q(needs_evaluation=True)),
        ]

    def __str__(self):
        return f"{self.dataset_id} -> {self.site_id} ({self.state})"


class TransferRequest(models.Model):
    """One file to one destination site: the reliable transfer queue.

    At most one row per file and destination, reused when the file is wanted there again;
    agents claim queued rows with SELECT ... FOR UPDATE SKIP LOCKED.
    """

    # Indexed by transferrequest_unique (file, destination).
    file = models.ForeignKey(File, on_delete=models.CASCADE, related_name="transfers", db_index=False)
    destination = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="transfers_in", db_index=False)
    # Indexed by transfer_source_finished (source, finished_at).
    source = models.ForeignKey(
        Site, null=True, blank=True, on_delete=models.SET_NULL, related_name="transfers_out",
        help_text="The source replica of the last attempt.", db_index=False,
    )  # fmt: skip
    activity = models.CharField(max_length=12, choices=Activity.choices, default=Activity.USER)
    priority = models.PositiveSmallIntegerField(default=3)
    state = models.CharField(max_length=10, choices=TransferState.choices, default=TransferState.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True, help_text="The last attempt's error.")
    excluded_sources = models.JSONField(
        default=list, blank=True, help_text="Ids of sites whose replica of the file was found bad."
    )
    tool = models.CharField(max_length=16, blank=True, help_text="Transfer tool that moved it.")
    bytes = models.BigIntegerField(default=0)
    agent = models.CharField(max_length=100, blank=True, help_text="The agent holding a submitted request.")
    requested_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField(help_text="Not claimed before this (retry backoff).")
    submitted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True, help_text="Duration of the successful copy.")

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["file", "destination"], name="transferrequest_unique")]
        indexes = [
            # The claim: best priority first among queued rows; partial, so it holds only the backlog.
            models.Index(fields=["-priority", "id"], name="transfer_queued", condition=Q(state="queued")),
            # The claim by activity rank (datasets.services.priorities): one range per activity group.
            models.Index(
                fields=["activity", "-priority", "id"], name="transfer_queued_activity", condition=Q(state="queued")
            ),
            # Submitted rows whose agent died are found by age.
            models.Index(fields=["submitted_at"], name="transfer_submitted", condition=Q(state="submitted")),
            models.Index(fields=["destination", "state"], name="transfer_destination_state"),
            models.Index(fields=["finished_at"], name="transfer_finished_at"),
            # A site page's transfers in and out that ended in its window.
            models.Index(fields=["destination", "finished_at"], name="transfer_destination_finished"),
            models.Index(fields=["source", "finished_at"], name="transfer_source_finished"),
        ]

    def __str__(self):
        return f"{self.file_id} -> {self.destination_id} ({self.state})"


class TransferChannelStat(models.Model):
    """Transfers per channel (source site -> destination site) and hour, for the monitor."""

    source = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="+")
    destination = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    files_done = models.PositiveIntegerField(default=0)
    bytes_done = models.BigIntegerField(default=0)
    files_failed = models.PositiveIntegerField(default=0)
    seconds = models.FloatField(default=0, help_text="Summed copy time of the files done.")
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-hour"]
        constraints = [
            models.UniqueConstraint(fields=["hour", "source", "destination"], name="transferchannelstat_unique")
        ]

    def __str__(self):
        return f"{self.source_id} -> {self.destination_id} at {self.hour:%Y-%m-%d %H}h"


class ReplicaCallback(models.Model):
    """Something to do once a dataset's replica at a site is complete (all its files there)."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="callbacks")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=CallbackKind.choices)
    url = models.CharField(max_length=500, blank=True, help_text="For http callbacks: where to POST.")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    owner_name = models.CharField(max_length=150)
    state = models.CharField(max_length=8, choices=CallbackState.choices, default=CallbackState.WAITING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    fired_at = models.DateTimeField(null=True, blank=True, help_text="When the replica was found complete.")
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["dataset", "site"], name="callback_waiting", condition=Q(state="waiting")),
            models.Index(fields=["next_attempt_at"], name="callback_due", condition=Q(state="due")),
        ]

    def __str__(self):
        return f"{self.kind} on {self.dataset_id} at {self.site_id} ({self.state})"


class ConsistencyCheck(models.Model):
    """One comparison of a site's storage with its replica catalog."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="consistency_checks")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    files_on_storage = models.PositiveIntegerField(default=0)
    replicas_in_catalog = models.PositiveIntegerField(default=0)
    n_dark = models.PositiveIntegerField(default=0, help_text="On storage, not in the catalog.")
    n_lost = models.PositiveIntegerField(default=0, help_text="In the catalog, not on storage.")
    dark = models.JSONField(default=list, blank=True, help_text="Paths of dark files (the first 1000).")
    lost = models.JSONField(default=list, blank=True, help_text="LFNs of lost replicas (the first 1000).")
    fixed = models.BooleanField(default=False, help_text="Lost replicas were removed from the catalog.")
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self):
        return f"consistency of {self.site_id} at {self.started_at:%Y-%m-%d %H:%M}"


# The data distribution policy and DDM operations live in their own modules; imported here so that
# Django finds them as models of this app.
from .ops_models import ActivityPriority, ChannelControl, DeletionProposal, SiteDDMConfig  # noqa: E402,F401
from .policy_models import PlacementDecision, PlacementRule, PlacementTarget, SitePreference  # noqa: E402,F401

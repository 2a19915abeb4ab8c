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

from .choices import DatasetKind, DatasetState, ReplicaState, VersionState


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


class DatasetReplica(models.Model):
    """The location catalog: how much of a dataset's latest version a site holds."""

    # Indexed by datasetreplica_unique (dataset, site) and datasetreplica_site (site, dataset) only.
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="replicas", db_index=False)
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="dataset_replicas", db_index=False)
    files_present = models.PositiveIntegerField(default=0)
    bytes_present = models.BigIntegerField(default=0)
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

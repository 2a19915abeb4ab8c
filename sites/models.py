"""Clouds and sites: where jobs run and where their data lives.

A Site is a PanDA queue (the computing resource pilots pull jobs for) together with
its storage endpoint (a directory or an HTTP URL in this system).
"""

from django.db import models

from .choices import GridFlavour, SiteStatus


class Cloud(models.Model):
    """A region of the grid: one Tier-1 and its Tier-2s."""

    name = models.CharField(max_length=32, unique=True)
    tier1 = models.CharField(max_length=64, blank=True, help_text="Name of the cloud's Tier-1 site.")
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Site(models.Model):
    name = models.CharField(max_length=64, unique=True)
    cloud = models.ForeignKey(Cloud, on_delete=models.PROTECT, related_name="sites")
    tier = models.PositiveSmallIntegerField(default=2, help_text="0 = CERN, 1 = national centre, 2/3 = institutes.")
    status = models.CharField(max_length=10, choices=SiteStatus.choices, default=SiteStatus.ONLINE)
    grid_flavour = models.CharField(max_length=10, choices=GridFlavour.choices, default=GridFlavour.LCG)
    max_memory_mb = models.PositiveIntegerField(default=4000, help_text="0 = no limit.")
    max_disk_mb = models.PositiveIntegerField(default=20000, help_text="0 = no limit.")
    max_walltime_s = models.PositiveIntegerField(default=48 * 3600, help_text="0 = no limit.")
    cores = models.PositiveSmallIntegerField(default=1, help_text="Cores per job slot.")
    max_running_jobs = models.PositiveIntegerField(default=1000, help_text="0 = no limit.")
    heartbeat_timeout_s = models.PositiveIntegerField(
        default=2 * 3600, help_text="A running job with no pilot update for this long is failed (lost heartbeat)."
    )
    storage_endpoint = models.CharField(
        max_length=300, blank=True, help_text="Directory path or HTTP URL of the site's storage element."
    )
    storage_http_url = models.CharField(
        max_length=300, blank=True,
        help_text="An HTTP(S) door to the same storage (for the http transfer tool); empty = none.",
    )  # fmt: skip
    transfer_tools = models.CharField(
        max_length=100, blank=True,
        help_text="Transfer tools to bring files here, in order of preference, e.g. 'http,local'; "
        "the next one is tried when one fails. Empty = local, then http.",
    )  # fmt: skip
    storage_capacity_gb = models.PositiveIntegerField(
        default=0, help_text="Size of the site's storage in GB, for the storage-full alarm (0 = unknown)."
    )
    releases = models.JSONField(
        default=list, blank=True,
        help_text='Software releases installed, e.g. ["11.0.3", "12.0.*"] (* = any characters; "ANY" = every '
        "release). Empty = the site does not say: jobs of any release may go there.",
    )  # fmt: skip
    trust_unauthenticated_pilots = models.BooleanField(
        default=False,
        help_text="Let pilots fetch jobs without a credential (only for a closed local batch farm).",
    )
    comment = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class PilotCredential(models.Model):
    """A bearer token that lets pilots fetch and update jobs for the sites it is bound to.

    Only the SHA-256 of the token is stored; the token itself is shown once when created.
    """

    name = models.CharField(max_length=100, unique=True)
    token_sha256 = models.CharField(max_length=64, unique=True)
    sites = models.ManyToManyField(Site, related_name="pilot_credentials")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return self.name


class PilotActivity(models.Model):
    """Per-site pilot contact counters: the 'last pilot contact' shown by the monitor."""

    site = models.OneToOneField(Site, on_delete=models.CASCADE, primary_key=True, related_name="pilot_activity")
    last_contact_at = models.DateTimeField(null=True, blank=True)
    last_node = models.CharField(max_length=128, blank=True)
    last_getjob_at = models.DateTimeField(null=True, blank=True)
    last_job_sent_at = models.DateTimeField(null=True, blank=True)
    last_update_at = models.DateTimeField(null=True, blank=True)
    getjob_requests = models.BigIntegerField(default=0)
    getjob_empty = models.BigIntegerField(default=0, help_text="getJob calls answered 'no job'.")
    jobs_sent = models.BigIntegerField(default=0)
    update_requests = models.BigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "pilot activity"

    def __str__(self):
        return f"pilot activity at {self.site_id}"


class StorageSpace(models.Model):
    """The last report of a site's storage space, from a pilot on the site or the storage agent."""

    site = models.OneToOneField(Site, on_delete=models.CASCADE, primary_key=True, related_name="storage_space")
    used_bytes = models.BigIntegerField()
    free_bytes = models.BigIntegerField()
    total_bytes = models.BigIntegerField()
    reported_at = models.DateTimeField()
    reported_by = models.CharField(max_length=150)

    def __str__(self):
        return f"space at {self.site_id}"

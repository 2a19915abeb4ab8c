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


class PilotFactory(models.Model):
    """A pilot factory process (`manage.py pilot_factory`): what it serves and when it last worked.

    The row outlives the process, so the scheduler page can list factories that stopped
    or went silent (no cycle for a few periods) as well as the operating ones."""

    name = models.CharField(max_length=64, unique=True)
    host = models.CharField(max_length=128)
    pid = models.PositiveIntegerField(default=0)
    plugin = models.CharField(max_length=16, help_text="Submission plugin: local, slurm, pbs or condor.")
    sites = models.ManyToManyField(Site, related_name="pilot_factories", blank=True)
    version = models.CharField(max_length=32)
    config = models.JSONField(default=dict, blank=True, help_text="Caps, timeouts and period of the last start.")
    period_s = models.PositiveIntegerField(default=60, help_text="Seconds between cycles.")
    started_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True, help_text="Set when the process exits cleanly.")
    last_cycle_at = models.DateTimeField(null=True, blank=True)
    cycles = models.BigIntegerField(default=0)
    last_error = models.CharField(max_length=1000, blank=True, help_text="The last cycle's problems; empty = none.")
    linked_until = models.DateTimeField(
        null=True, blank=True, help_text="Jobs modified before this were already linked to their pilots."
    )
    last_decisions = models.JSONField(
        default=dict, blank=True, help_text="The last cycle's decision per site: {site: {submit, reason}}."
    )

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "pilot factories"

    def __str__(self):
        return self.name


class PilotState(models.TextChoices):
    SUBMITTED = "submitted", "handed to the batch system (or started on the host); has not called the server yet"
    RUNNING = "running", "the pilot told the server it started, or the batch system runs it"
    FINISHED = "finished", "ended normally (exit code 0)"
    FAILED = "failed", "submission failed, or the pilot ended with a non-zero exit code"
    LOST = "lost", "never started, vanished, or stopped contacting the server without a final report"


class Pilot(models.Model):
    """One pilot a factory submitted: its batch job, its life and the jobs it ran."""

    id = models.UUIDField(primary_key=True)
    factory = models.ForeignKey(PilotFactory, on_delete=models.CASCADE, related_name="pilots")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="pilots")
    plugin = models.CharField(max_length=16)
    batch_id = models.CharField(max_length=80, blank=True, help_text="Batch job id (the pid for local pilots).")
    state = models.CharField(max_length=10, choices=PilotState.choices, default=PilotState.SUBMITTED)
    submitted_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    last_contact_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    node = models.CharField(max_length=128, blank=True)
    jobs_run = models.PositiveIntegerField(default=0)
    exit_code = models.IntegerField(null=True, blank=True)
    exit_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-submitted_at"]
        indexes = [
            # The factory's cycle and the page's counts: a factory's live pilots per site.
            models.Index(fields=["factory", "state", "site"], name="pilot_factory_state"),
            models.Index(fields=["site", "state"], name="pilot_site_state"),
            # Recent failures, newest first.
            models.Index(fields=["state", "ended_at"], name="pilot_state_ended"),
        ]

    def __str__(self):
        return f"pilot {self.id} at {self.site_id}"


class PilotJob(models.Model):
    """A job a pilot ran (PandaID; the sites app sits below jobs, so no foreign key to Job)."""

    pilot = models.ForeignKey(Pilot, on_delete=models.CASCADE, related_name="job_links")
    pandaid = models.BigIntegerField()
    linked_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pilot", "pandaid"], name="pilotjob_unique")]
        indexes = [models.Index(fields=["pandaid"], name="pilotjob_pandaid")]

    def __str__(self):
        return f"job {self.pandaid} of pilot {self.pilot_id}"

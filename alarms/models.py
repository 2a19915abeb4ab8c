"""Alarms (records of what is wrong, raised by rules and probes) and email notifications."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from .choices import AlarmState, Severity, SubjectKind


class NotificationPreference(models.Model):
    """What a user wants to be mailed about. Opt-in: nothing is sent until a box is ticked."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preference"
    )
    email = models.EmailField(blank=True, help_text="Where to send; empty = the account's email.")
    on_start = models.BooleanField(default=False, help_text="A job of mine started running.")
    on_finish = models.BooleanField(default=False, help_text="A job of mine finished.")
    on_failure = models.BooleanField(default=False, help_text="A job of mine failed.")

    def __str__(self):
        return f"notifications of {self.user}"

    @property
    def address(self):
        return self.email or self.user.email


class SentNotification(models.Model):
    """One mail sent: a digest of a user's job events since the previous one."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    address = models.EmailField()
    subject = models.CharField(max_length=200)
    events = models.PositiveIntegerField(help_text="Job events summarised in this mail.")
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-sent_at"]
        indexes = [models.Index(fields=["user", "-sent_at"], name="sentnotification_user_time")]

    def __str__(self):
        return f"{self.subject} to {self.address}"


class Alarm(models.Model):
    """Something wrong with a subject (a site, a job, a task, a dataset, a service).

    Raising the same alarm (category + subject) again while it is not resolved updates it
    (last seen, count, message) instead of adding a row."""

    category = models.CharField(max_length=60, help_text="What kind of problem, e.g. site-no-pilots.")
    severity = models.CharField(max_length=8, choices=Severity.choices)
    subject_kind = models.CharField(max_length=8, choices=SubjectKind.choices)
    subject = models.CharField(max_length=255)
    message = models.CharField(max_length=500)
    source = models.CharField(max_length=160, help_text="The rule, or the probe/user that raised it.")
    state = models.CharField(max_length=12, choices=AlarmState.choices, default=AlarmState.OPEN)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    count = models.PositiveIntegerField(default=1)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True, help_text="Last mail about it (quiet period).")

    class Meta:
        constraints = [
            # One live alarm per problem: what makes "raise again" an update.
            models.UniqueConstraint(
                fields=["category", "subject_kind", "subject"],
                condition=~Q(state=AlarmState.RESOLVED),
                name="alarm_one_live_per_subject",
            )
        ]
        indexes = [models.Index(fields=["state", "-last_seen"], name="alarm_state_seen")]

    def __str__(self):
        return f"[{self.severity}] {self.category} {self.subject_kind} {self.subject}: {self.message}"


class AlarmSubscription(models.Model):
    """Mail me alarms of this category and/or site (empty = any) at or above this severity."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alarm_subscriptions")
    category = models.CharField(max_length=60, blank=True)
    site = models.CharField(
        max_length=64,
        blank=True,
        help_text="A site name: its alarms and those of transfer channels from or to it; empty = every subject.",
    )
    min_severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.WARNING)

    def __str__(self):
        return f"{self.user}: {self.category or 'any'} at {self.site or 'any'} >= {self.min_severity}"


class JobCountSnapshot(models.Model):
    """Operations history: at `taken_at`, jobs of a site (or of all sites when site is empty) in a state.

    Live states are the number of jobs in the state at that moment; final states the number
    that ended since the previous snapshot. Taken every few minutes, kept for PANDA_HISTORY_DAYS."""

    taken_at = models.DateTimeField()
    site = models.ForeignKey("sites.Site", null=True, blank=True, on_delete=models.CASCADE, db_index=False)
    status = models.CharField(max_length=16)
    n = models.PositiveIntegerField()

    class Meta:
        indexes = [
            models.Index(fields=["site", "taken_at"], name="snapshot_site_time"),
            models.Index(fields=["taken_at"], name="snapshot_time"),
        ]

    def __str__(self):
        return f"{self.taken_at:%Y-%m-%d %H:%M} {self.site_id or 'all'} {self.status}={self.n}"


class TransferChannelSnapshot(models.Model):
    """Operations history: at `taken_at`, the transfers of a channel (source -> destination) since the
    previous snapshot; source and destination empty = every channel. Taken with the jobs snapshots'
    interval, kept as long.

    Counted from the hourly TransferChannelStat rows: `hour_*` keep what the channel's row of the
    snapshot's hour held when it was read, so the next snapshot counts only what came after."""

    taken_at = models.DateTimeField()
    source = models.ForeignKey(
        "sites.Site", null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    destination = models.ForeignKey(
        "sites.Site", null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    files_done = models.PositiveIntegerField(default=0)
    files_failed = models.PositiveIntegerField(default=0, help_text="Failed attempts.")
    bytes_done = models.BigIntegerField(default=0)
    hour_files_done = models.PositiveIntegerField(default=0)
    hour_files_failed = models.PositiveIntegerField(default=0)
    hour_bytes_done = models.BigIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["destination", "taken_at"], name="transfersnap_destination_time"),
            models.Index(fields=["source", "taken_at"], name="transfersnap_source_time"),
            models.Index(fields=["taken_at"], name="transfersnap_time"),
        ]

    def __str__(self):
        channel = f"{self.source_id}->{self.destination_id}" if self.destination_id else "all channels"
        return f"{self.taken_at:%Y-%m-%d %H:%M} {channel}: {self.files_done} done, {self.files_failed} failed"


class TransferQueueSnapshot(models.Model):
    """Operations history: at `taken_at`, transfer requests to a destination (empty = all) queued and
    in flight (submitted to an agent)."""

    taken_at = models.DateTimeField()
    destination = models.ForeignKey(
        "sites.Site", null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    queued = models.PositiveIntegerField(default=0)
    submitted = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["destination", "taken_at"], name="queuesnap_destination_time"),
            models.Index(fields=["taken_at"], name="queuesnap_time"),
        ]

    def __str__(self):
        return f"{self.taken_at:%Y-%m-%d %H:%M} to {self.destination_id or 'all'}: {self.queued} queued"


class StorageSnapshot(models.Model):
    """Operations history: at `taken_at`, a site's storage (empty = the sum over sites): its last space
    report (null when it never reported) and the bytes of its replicas in the catalog."""

    taken_at = models.DateTimeField()
    site = models.ForeignKey("sites.Site", null=True, blank=True, on_delete=models.CASCADE, db_index=False)
    used_bytes = models.BigIntegerField(null=True, blank=True)
    free_bytes = models.BigIntegerField(null=True, blank=True)
    total_bytes = models.BigIntegerField(null=True, blank=True)
    reported_at = models.DateTimeField(null=True, blank=True, help_text="When the space report was made.")
    catalog_bytes = models.BigIntegerField(default=0, help_text="Bytes of the site's dataset replicas.")

    class Meta:
        indexes = [
            models.Index(fields=["site", "taken_at"], name="storagesnap_site_time"),
            models.Index(fields=["taken_at"], name="storagesnap_time"),
        ]

    def __str__(self):
        return f"{self.taken_at:%Y-%m-%d %H:%M} {self.site_id or 'all'}: {self.used_bytes} used"

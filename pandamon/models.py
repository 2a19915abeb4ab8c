"""Cross-cutting records shared by every app."""

from django.conf import settings
from django.db import models


class WorkerRun(models.Model):
    """One run of a periodic worker (brokerage, watchers, ...), shown in the portal.

    The alarms use the newest row per name to notice workers that stopped running.
    """

    class Status(models.TextChoices):
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    name = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["name", "-started_at"], name="workerrun_name_started")]
        ordering = ["-started_at"]

    def __str__(self):
        return f"{self.name} at {self.started_at:%Y-%m-%d %H:%M:%S} ({self.status})"


class Identity(models.Model):
    """A user's grid identity: the certificate DN PanDA records as prodUserID, and the VO.

    Kept beside Django's user (username = prodUserName) rather than replacing it, so the
    admin, sessions and tokens keep working unchanged."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="identity")
    dn = models.CharField(
        max_length=250, unique=True, null=True, blank=True, verbose_name="DN", help_text="Certificate subject DN."
    )
    vo = models.CharField(max_length=16, default="atlas", verbose_name="VO")

    class Meta:
        verbose_name_plural = "identities"

    def __str__(self):
        return f"{self.user} ({self.dn or 'no DN'})"


class PhysicsGroup(models.Model):
    """A physics working group: its members may submit as the group (workingGroup) and use its quota."""

    name = models.CharField(max_length=32, unique=True, help_text="As in workingGroup, e.g. phys-higgs.")
    vo = models.CharField(max_length=16, default="atlas", verbose_name="VO")
    description = models.CharField(max_length=200, blank=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="physics_groups")

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class LogCursor(models.Model):
    """How far one consumer has read the job state log (the last JobStatusLog id it handled).

    Consumers that fold the log incrementally (quota accounting, email notifications) lock
    their row while they read, so two runs never handle a change twice."""

    name = models.CharField(max_length=50, unique=True)
    last_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.name} at {self.last_id}"


class LoginThrottle(models.Model):
    """Failed password logins of one user name from one client address (pandamon/login_throttle.py)."""

    username = models.CharField(max_length=150)
    address = models.CharField(max_length=45, help_text="The client's IP address (REMOTE_ADDR).")
    failures = models.PositiveIntegerField(default=0)
    first_failure_at = models.DateTimeField(help_text="Start of the window the failures are counted in.")
    locked_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["username", "address"], name="loginthrottle_user_address")]

    def __str__(self):
        return f"{self.username} from {self.address}: {self.failures} failure(s)"

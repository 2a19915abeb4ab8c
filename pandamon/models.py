"""Cross-cutting records shared by every app."""

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

from django.db import models


class Resource(models.TextChoices):
    RUNNING_JOBS = "running_jobs", "running jobs (sent … transferring)"
    QUEUED_JOBS = "queued_jobs", "queued jobs (defined … activated)"
    CPU_HOURS_DAY = "cpu_hours_day", "CPU hours today (UTC day, from ended jobs)"
    CPU_HOURS_WEEK = "cpu_hours_week", "CPU hours over the last 7 days"
    STORAGE_BYTES = "storage_bytes", "bytes of your user datasets' replicas, all sites"


class AccountKind(models.TextChoices):
    USER = "user"
    GROUP = "group"


class SubjectKind(models.TextChoices):
    """Whom a quota rule applies to: everyone holding a role (the default), one user or one group."""

    ROLE = "role", "default for a role"
    USER = "user", "one user"
    GROUP = "group", "one physics group"

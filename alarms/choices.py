from django.db import models


class Severity(models.TextChoices):
    INFO = "info", "info: worth knowing"
    WARNING = "warning", "warning: needs a look today"
    CRITICAL = "critical", "critical: jobs or data are being lost or blocked now"


SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class AlarmState(models.TextChoices):
    OPEN = "open", "open: the condition holds and nobody has taken it"
    ACKNOWLEDGED = "acknowledged", "acknowledged: a shifter is on it"
    RESOLVED = "resolved", "resolved: the condition cleared or someone closed it"


class SubjectKind(models.TextChoices):
    SITE = "site"
    JOB = "job"
    TASK = "task"
    DATASET = "dataset"
    SERVICE = "service"
    CHANNEL = "channel", "channel: transfers from a source site to a destination site (subject SOURCE->DEST)"


CHANNEL_ARROW = "->"


def channel_subject(source, destination):
    """The subject of a channel alarm: `BNL->MWT2`."""
    return f"{source}{CHANNEL_ARROW}{destination}"

from django.db import models


class DatasetKind(models.TextChoices):
    DATASET = "dataset", "dataset: a versioned collection of files"
    CONTAINER = "container", "container: a collection of datasets (no files of its own)"
    DATABLOCK = "datablock", "datablock: an immutable dataset moved whole (a site holds all of it or none)"


class DatasetState(models.TextChoices):
    OPEN = "open", "open: files can be added to the latest version"
    CLOSED = "closed", "closed: the latest version is immutable; a new version can be registered"
    FROZEN = "frozen", "frozen: final, no new files and no new versions, ever"


class VersionState(models.TextChoices):
    OPEN = "open"
    CLOSED = "closed"


class ReplicaState(models.TextChoices):
    AVAILABLE = "available", "available: the file is on the site's storage"
    COPYING = "copying", "copying: a transfer to the site is under way"
    BAD = "bad", "bad: declared corrupted or lost"

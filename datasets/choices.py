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


class SubscriptionState(models.TextChoices):
    ACTIVE = "active", "active: transfers of the files the site lacks are queued or under way"
    DONE = "done", "done: the site holds every file; a new version or new files make it active again"
    STUCK = "stuck", "stuck: a file failed every transfer attempt; the reason names it and why (retried later)"
    SUSPENDED = "suspended", "suspended by an operator: the agent leaves it alone"


class Activity(models.TextChoices):
    """Why data moves; dispatch and archival subscriptions are made by the PanDA data flow."""

    DATA_TAKING = "data_taking", "detector data export from the Tier-0 (RAW and first-pass outputs)"
    USER = "user", "user subscription"
    PRODUCTION = "production", "production data placement"
    DISPATCH = "dispatch", "PanDA input: a job's input files sent to the site it was brokered to"
    ARCHIVAL = "archival", "PanDA output: a job's outputs sent to its cloud's Tier-1"


class TransferState(models.TextChoices):
    QUEUED = "queued", "queued: waiting for an agent (or for its retry time after a failed attempt)"
    SUBMITTED = "submitted", "submitted: an agent is copying the file"
    DONE = "done", "done: copied, verified and registered at the destination"
    FAILED = "failed", "failed: every attempt failed; the error says why"


class CallbackKind(models.TextChoices):
    ACTIVATE_JOBS = "activate_jobs", "activate the jobs waiting for this dispatch dataset (PanDA Activator)"
    ARCHIVE = "archive", "mark the destination dataset archived and finish its transferring jobs (PanDA Finisher)"
    HTTP = "http", "POST a notification to a URL (retried with backoff)"


class CallbackState(models.TextChoices):
    WAITING = "waiting", "waiting for the replica to become complete"
    DUE = "due", "the replica is complete; the notification is being delivered"
    DONE = "done", "fired"
    FAILED = "failed", "delivery failed after every retry; the error says why"

from django.db import models


class JobStatus(models.TextChoices):
    """Job states of reference/panda-server.md §1.1, with the help text the portal shows."""

    PENDING = "pending", "generated, not yet handed to the brokerage"
    DEFINED = "defined", "awaiting brokerage (a diagnostic says why when no site fits)"
    ASSIGNED = "assigned", "brokered; waiting for its input to be transferred to the site"
    WAITING = "waiting", "held, waiting for input data to become available"
    ACTIVATED = "activated", "ready: the next pilot at its site can take it"
    THROTTLED = "throttled", "activated but parked by the user's running-job cap"
    SENT = "sent", "picked up by a pilot; no reply from the pilot yet"
    STARTING = "starting", "the pilot is preparing the job (stage-in)"
    RUNNING = "running", "the payload is executing; the pilot heartbeats"
    HOLDING = "holding", "the pilot reported the end; outputs are being recorded"
    MERGING = "merging", "outputs are being merged"
    TRANSFERRING = "transferring", "outputs are moving to their final destination"
    FINISHED = "finished", "done successfully"
    FAILED = "failed", "ended in error; the error table names the component, the code and its meaning"
    CANCELLED = "cancelled", "killed by a person"
    CLOSED = "closed", "terminated by the system before it ran (e.g. reassigned)"


FINAL_STATES = frozenset({JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.CLOSED})
# Every other state, listed: `status IN (live states)` is served by the status indexes, while
# `NOT status IN (final states)` makes PostgreSQL scan the whole job table.
LIVE_STATES = tuple(state for state in JobStatus if state not in FINAL_STATES)
QUEUED_STATES = frozenset(
    {
        JobStatus.PENDING,
        JobStatus.DEFINED,
        JobStatus.ASSIGNED,
        JobStatus.WAITING,
        JobStatus.ACTIVATED,
        JobStatus.THROTTLED,
    }
)
# States in which a pilot holds the job; kills go through commandToPilot.
PILOT_STATES = frozenset(
    {
        JobStatus.SENT,
        JobStatus.STARTING,
        JobStatus.RUNNING,
        JobStatus.HOLDING,
        JobStatus.MERGING,
        JobStatus.TRANSFERRING,
    }
)


class FileType(models.TextChoices):
    INPUT = "input"
    OUTPUT = "output"
    LOG = "log"
    PSEUDO_INPUT = "pseudo_input"


class FileStatus(models.TextChoices):
    PENDING = "pending"
    READY = "ready"
    MISSING = "missing"
    UNKNOWN = "unknown"
    TRANSFERRING = "transferring"
    FAILED = "failed"
    NOOUTPUT = "nooutput"


class ProdSourceLabel(models.TextChoices):
    MANAGED = "managed", "production"
    USER = "user", "analysis"
    TEST = "test", "test"
    PANDA = "panda", "build job"
    PTEST = "ptest", "pilot test"
    PROD_TEST = "prod_test", "production test"
    INSTALL = "install", "software installation"


# Labels a pilot may ask for, and the job labels each one receives (panda-server.md §3.2).
PILOT_LABEL_MAP = {
    "user": ("user", "panda", "install"),
    "managed": ("managed", "test", "prod_test", "install"),
    "unified": ("user", "panda", "install", "managed", "test", "prod_test"),
    "test": ("test", "prod_test", "ptest"),
    "ptest": ("ptest", "test", "prod_test"),
    "prod_test": ("prod_test", "test"),
    "install": ("install",),
    "panda": ("panda",),
}
# A pilot that names no label is a "unified" pilot of this system: it gets jobs of any label.

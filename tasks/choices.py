from django.db import models


class TaskType(models.TextChoices):
    PRODUCTION = "production", "production: defined by a production manager from a task request"
    ANALYSIS = "analysis", "analysis: a user's pathena/prun-style submission"


class TaskStatus(models.TextChoices):
    """Task states (reference/panda-server.md §7.1, simplified), with the help text the portal shows."""

    DEFINED = "defined", "defined: registered, its input not yet split into jobs"
    READY = "ready", "ready: split into jobs, none has started"
    RUNNING = "running", "running: some of its jobs are queued or running"
    PAUSED = "paused", "paused by its owner or a production manager: its jobs not yet brokered wait; running ones go on"
    DONE = "done", "done: every input file was processed"
    FINISHED = "finished", "finished (partly): ended with some input files failed for good"
    FAILED = "failed", "failed: no input file could be processed"
    ABORTED = "aborted", "aborted by its owner or a production manager; its jobs were killed"
    BROKEN = (
        "broken",
        "broken: its first jobs all failed for good and none succeeded; it was stopped (the reason says why)",
    )


FINAL_TASK_STATES = frozenset({TaskStatus.DONE, TaskStatus.FINISHED, TaskStatus.FAILED, TaskStatus.ABORTED,
                               TaskStatus.BROKEN})  # fmt: skip


class InputStatus(models.TextChoices):
    """What became of one piece of a task's input (a file, or a range of events within a file)."""

    PENDING = "pending", "waiting to be put into a job"
    ASSIGNED = "assigned", "in a job that has not ended"
    DONE = "done", "processed by a finished job"
    FAILED = "failed", "its jobs failed and no attempt is left"

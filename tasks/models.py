"""Tasks: the unit users think in. A task's input is split into jobs; its state rolls up from them.

TaskInput is the task's record of its input (JEDI's dataset contents): one row per
file, or per range of events within a file when jobs take part of a file. It says
which job holds each piece, so "process only new files" is a set difference and a
file is processed exactly once. Counters on Task are maintained incrementally from
the job state log (tasks/services/rollup.py), never recounted on a page.
"""

from django.conf import settings
from django.db import models

from .choices import InputStatus, TaskStatus, TaskType


class Task(models.Model):
    task_id = models.BigAutoField(primary_key=True, verbose_name="task ID")
    name = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=12, choices=TaskType.choices)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="tasks")  # fmt: skip
    owner_name = models.CharField(max_length=150)
    working_group = models.CharField(max_length=32, blank=True)
    vo = models.CharField(max_length=16, blank=True, default="atlas")
    project = models.CharField(max_length=64, blank=True)
    prod_source_label = models.CharField(max_length=20, default="user")

    # What runs
    transformation = models.TextField(help_text="URL of the payload script, the script itself (#!...), or a command.")
    trf_version = models.CharField(max_length=64, blank=True)
    sw_release = models.CharField(max_length=64, blank=True)
    job_parameters = models.TextField(
        blank=True, help_text="Template: ${IN} ${OUT} ${SN} ${FIRSTEVENT} ${SKIPEVENTS} ${MAXEVENTS}."
    )

    # Data
    input_dataset = models.CharField(max_length=255, help_text="Dataset or container name.")
    output_dataset = models.CharField(max_length=255, help_text="Container collecting the jobs' outputs.")
    output_formats = models.CharField(max_length=200, default="root", help_text="Dot-separated, e.g. ESD.AOD.")
    follow_input = models.BooleanField(default=False, help_text="Make jobs for files added to the input later.")

    # Splitting and requirements
    n_files_per_job = models.PositiveIntegerField(null=True, blank=True)
    n_events_per_job = models.PositiveIntegerField(null=True, blank=True)
    max_size_per_job_mb = models.PositiveIntegerField(null=True, blank=True)
    events_per_file = models.PositiveIntegerField(null=True, blank=True, help_text="When files do not say.")
    cpu_per_event = models.PositiveIntegerField(default=0, help_text="kSI2k seconds per event.")
    ram_mb = models.PositiveIntegerField(default=0)
    walltime_s = models.PositiveIntegerField(default=0)
    priority = models.IntegerField(default=1000)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    site = models.CharField(max_length=64, blank=True, help_text="Run only at this site.")
    excluded_sites = models.JSONField(default=list, blank=True)
    no_looping_check = models.BooleanField(
        default=False,
        help_text="The pilot does not kill the task's jobs as looping (JEDI's noLoopingCheck, split rule LC): "
        "for payloads that legitimately leave their work directory untouched for hours.",
    )

    # State and counters (rolled up from the job state log)
    status = models.CharField(max_length=10, choices=TaskStatus.choices, default=TaskStatus.DEFINED)
    status_reason = models.CharField(max_length=500, blank=True)
    files_total = models.PositiveIntegerField(default=0, help_text="Input pieces (files or event ranges).")
    files_done = models.PositiveIntegerField(default=0)
    files_failed = models.PositiveIntegerField(default=0)
    events_total = models.BigIntegerField(default=0)
    events_done = models.BigIntegerField(default=0)
    jobs_by_state = models.JSONField(default=dict, blank=True, help_text="Current jobs of the task by state.")
    created_at = models.DateTimeField(auto_now_add=True)
    modified_at = models.DateTimeField(auto_now=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-task_id"]
        indexes = [
            models.Index(fields=["status", "modified_at"], name="task_status_modified"),
            models.Index(fields=["owner", "status"], name="task_owner_status"),
            models.Index(fields=["output_dataset"], name="task_output_dataset"),
        ]

    def __str__(self):
        return f"{self.task_id} {self.name} ({self.status})"


class TaskInput(models.Model):
    """One piece of a task's input and the job that holds it."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="inputs")
    lfn = models.CharField(max_length=255, verbose_name="LFN")
    fsize = models.BigIntegerField(default=0)
    first_event = models.BigIntegerField(default=0, help_text="0-based offset of the range within the file.")
    n_events = models.BigIntegerField(null=True, blank=True, help_text="Events in the range (empty = whole file).")
    status = models.CharField(max_length=10, choices=InputStatus.choices, default=InputStatus.PENDING)
    job_id = models.BigIntegerField(null=True, blank=True, help_text="PandaID of the job holding it now.")
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["task", "lfn", "first_event"]
        constraints = [models.UniqueConstraint(fields=["task", "lfn", "first_event"], name="taskinput_unique")]
        indexes = [models.Index(fields=["job_id"], name="taskinput_job", condition=models.Q(job_id__isnull=False))]

    def __str__(self):
        return f"{self.lfn}[{self.first_event}:] of task {self.task_id} ({self.status})"


class JobSet(models.Model):
    """One submission of jobs for a task; its id is the jobsetID/jobDefinitionID the server assigns."""

    jobset_id = models.BigAutoField(primary_key=True, verbose_name="jobset ID")
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="jobsets")
    n_jobs = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"jobset {self.jobset_id} of task {self.task_id}"


class TaskStatusLog(models.Model):
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="status_log")
    old_status = models.CharField(max_length=10, blank=True)
    new_status = models.CharField(max_length=10)
    changed_at = models.DateTimeField()
    actor = models.CharField(max_length=150)
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["changed_at", "id"]

    def __str__(self):
        return f"task {self.task_id}: {self.old_status} -> {self.new_status}"

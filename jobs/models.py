"""Jobs, their files and their state history (PanDA JobSpec / FileSpec / JOBS_STATUSLOG).

Models stay thin: every state change goes through jobs.services.state, which
checks the transition and writes the JobStatusLog row.
"""

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from sites.models import Site

from .choices import FileStatus, FileType, JobStatus


class Job(models.Model):
    pandaid = models.BigAutoField(primary_key=True, verbose_name="PandaID")
    job_name = models.CharField(max_length=256)
    job_definition_id = models.BigIntegerField(null=True, blank=True)
    jobset_id = models.BigIntegerField(null=True, blank=True)
    task_id = models.BigIntegerField(null=True, blank=True, db_index=True, help_text="Task (jediTaskID) that made it.")
    req_id = models.BigIntegerField(null=True, blank=True)

    # What runs
    prod_source_label = models.CharField(max_length=20, default="user")
    processing_type = models.CharField(max_length=64, blank=True)
    transformation = models.TextField(help_text="URL of the payload script, the script itself (#!...), or a command.")
    job_parameters = models.TextField(blank=True)
    homepackage = models.CharField(max_length=80, blank=True)
    sw_release = models.CharField(max_length=64, blank=True)
    cmt_config = models.CharField(max_length=64, blank=True)
    container_name = models.CharField(max_length=200, blank=True)
    app = models.CharField(max_length=64, blank=True)
    special_handling = models.CharField(max_length=80, blank=True)

    # Who
    # Indexed by job_owner_status (owner, status), which also serves owner-only lookups.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs", db_index=False
    )
    prod_user_id = models.CharField(max_length=250, blank=True, help_text="Submitter's certificate DN.")
    prod_user_name = models.CharField(max_length=60, blank=True)
    working_group = models.CharField(max_length=32, blank=True)
    source_group = models.CharField(max_length=32, blank=True)
    vo = models.CharField(max_length=16, blank=True)
    country_group = models.CharField(max_length=20, blank=True)

    # Where
    computing_site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.PROTECT, related_name="jobs")
    cloud = models.CharField(max_length=32, blank=True)
    destination_se = models.CharField(max_length=64, blank=True)

    # Requirements (0 = not set)
    core_count = models.PositiveSmallIntegerField(default=1)
    min_ram_count = models.PositiveIntegerField(default=0, help_text="MB")
    max_disk_count = models.PositiveIntegerField(default=0, help_text="MB")
    max_cpu_count = models.PositiveIntegerField(default=0, help_text="seconds")
    max_walltime = models.PositiveIntegerField(default=0, help_text="seconds")

    # Scheduling
    assigned_priority = models.IntegerField(default=1000)
    current_priority = models.IntegerField(default=1000)
    attempt_nr = models.PositiveSmallIntegerField(default=1)
    max_attempt = models.PositiveSmallIntegerField(default=3)
    parent_id = models.BigIntegerField(null=True, blank=True, help_text="PandaID of the previous attempt.")

    # State
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.DEFINED)
    job_sub_status = models.CharField(max_length=80, blank=True)
    command_to_pilot = models.CharField(max_length=250, blank=True)
    # PanDA keeps this in specialHandling ("dm"); a column of its own is not copied into retries.
    debug_mode = models.BooleanField(
        default=False, help_text="The pilot heartbeats often and sends its payload's stdout tail (docs/job-control.md)."
    )
    creation_time = models.DateTimeField()
    modification_time = models.DateTimeField(help_text="Last change or pilot heartbeat.")
    state_change_time = models.DateTimeField()
    start_time = models.DateTimeField(null=True, blank=True)
    end_time = models.DateTimeField(null=True, blank=True)
    brokered_at = models.DateTimeField(null=True, blank=True, help_text="Last brokerage attempt.")
    n_sent = models.PositiveSmallIntegerField(default=0)

    # Pilot and worker
    modification_host = models.CharField(max_length=128, blank=True, help_text="Worker node of the pilot.")
    pilot_id = models.CharField(max_length=200, blank=True)
    pilot_version = models.CharField(max_length=64, blank=True)
    batch_id = models.CharField(max_length=80, blank=True)

    # Outcome and metrics
    trans_exit_code = models.IntegerField(null=True, blank=True)
    pilot_error_code = models.IntegerField(default=0)
    pilot_error_diag = models.CharField(max_length=500, blank=True)
    exe_error_code = models.IntegerField(default=0)
    exe_error_diag = models.CharField(max_length=500, blank=True)
    sup_error_code = models.IntegerField(default=0)
    sup_error_diag = models.CharField(max_length=250, blank=True)
    ddm_error_code = models.IntegerField(default=0)
    ddm_error_diag = models.CharField(max_length=500, blank=True)
    brokerage_error_code = models.IntegerField(default=0)
    brokerage_error_diag = models.CharField(max_length=250, blank=True)
    job_dispatcher_error_code = models.IntegerField(default=0)
    job_dispatcher_error_diag = models.CharField(max_length=250, blank=True)
    task_buffer_error_code = models.IntegerField(default=0)
    task_buffer_error_diag = models.CharField(max_length=300, blank=True)
    server_error_code = models.IntegerField(default=0)
    server_error_diag = models.CharField(max_length=250, blank=True)
    cpu_consumption_time = models.BigIntegerField(null=True, blank=True)
    cpu_consumption_unit = models.CharField(max_length=32, blank=True)
    max_rss = models.BigIntegerField(null=True, blank=True, help_text="kB")
    max_vmem = models.BigIntegerField(null=True, blank=True, help_text="kB")
    n_events = models.BigIntegerField(default=0)
    n_input_files = models.IntegerField(default=0)

    class Meta:
        ordering = ["-pandaid"]
        indexes = [
            # The dispatcher's hot query: activated jobs of one site, best priority first.
            # Partial, so it stays as small as the activated working set however large history grows.
            models.Index(
                fields=["computing_site", "-current_priority", "pandaid"],
                name="job_dispatch_activated",
                condition=Q(status="activated"),
            ),
            # Brokerage picks defined jobs least recently tried first.
            models.Index(fields=["brokered_at", "pandaid"], name="job_broker_defined", condition=Q(status="defined")),
            # Watchers and site summaries: jobs of a site in a state, by heartbeat age.
            models.Index(fields=["status", "computing_site", "modification_time"], name="job_status_site_mod"),
            # Time-window listings.
            # Covering: the summary pages (users, daily usage, plots) read a window of jobs from the index
            # alone instead of fetching ~500,000 rows one by one (bench/README.md). The included columns
            # change with the state anyway, so job updates pay no extra index write, only size.
            models.Index(
                fields=["modification_time"],
                name="job_modification_time",
                include=[
                    "status",
                    "prod_user_name",
                    "computing_site",
                    "cpu_consumption_time",
                    "creation_time",
                    "start_time",
                    "end_time",
                    "prod_source_label",
                ],
            ),  # fmt: skip
            models.Index(fields=["creation_time"], name="job_creation_time"),
            models.Index(fields=["owner", "status"], name="job_owner_status"),
            # A plain index: db_index=True would add a second, LIKE-only index written on every change.
            models.Index(fields=["prod_user_name"], name="job_prod_user_name"),
            # The job page's "next attempts" (retries point at their parent); partial: few jobs are retries.
            models.Index(fields=["parent_id"], name="job_parent", condition=Q(parent_id__isnull=False)),
        ]

    def __str__(self):
        return f"{self.pandaid} {self.job_name} ({self.status})"

    @property
    def is_final(self):
        from .choices import FINAL_STATES

        return self.status in FINAL_STATES


class JobFile(models.Model):
    """One file of one job attempt (filesTable4)."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="files")
    type = models.CharField(max_length=16, choices=FileType.choices)
    lfn = models.CharField(max_length=256, verbose_name="LFN")
    guid = models.CharField(max_length=64, blank=True, verbose_name="GUID")
    scope = models.CharField(max_length=64, blank=True)
    dataset = models.CharField(max_length=255, blank=True)
    prod_dblock = models.CharField(max_length=255, blank=True)
    dispatch_dblock = models.CharField(max_length=255, blank=True)
    destination_dblock = models.CharField(max_length=255, blank=True)
    destination_se = models.CharField(max_length=64, blank=True)
    fsize = models.BigIntegerField(null=True, blank=True)
    checksum = models.CharField(max_length=40, blank=True, help_text="ad:<adler32 hex>")
    md5sum = models.CharField(max_length=40, blank=True)
    surl = models.CharField(max_length=500, blank=True, help_text="Where the pilot stored it.")
    status = models.CharField(max_length=16, choices=FileStatus.choices, default=FileStatus.UNKNOWN)
    attempt_nr = models.PositiveSmallIntegerField(default=1)

    class Meta:
        ordering = ["id"]
        # The dataset pages list the latest jobs naming a dataset in one of these columns: (column, job)
        # serves "newest jobs of this dataset" straight from the index. Partial (non-empty only), so a
        # file adds entries only to the columns it fills (inputs: dataset, prod/dispatch block; outputs:
        # dataset, destination block).
        indexes = [
            models.Index(fields=["lfn"], name="jobfile_lfn"),
            *(
                models.Index(fields=[column, "job"], name=f"jobfile_{column}", condition=~Q(**{column: ""}))
                for column in ("dataset", "prod_dblock", "dispatch_dblock", "destination_dblock")
            ),
        ]

    def __str__(self):
        return f"{self.lfn} ({self.type})"


class JobStatusLog(models.Model):
    """Every state change of a job: who, when, from, to and why."""

    # Indexed by jobstatuslog_job_time (job, changed_at); a separate job index would be written twice per change.
    # No database constraint, like PanDA's JOBS_STATUSLOG: every getJob writes a row, and the deferred
    # FK check per row was measurable there; rows are only written by the services, next to their job,
    # and may outlive a job moved to an archive. Deleting a job through the ORM still deletes its log.
    job = models.ForeignKey(
        Job, on_delete=models.CASCADE, related_name="status_log", db_index=False, db_constraint=False
    )
    old_status = models.CharField(max_length=16, blank=True)
    new_status = models.CharField(max_length=16)
    changed_at = models.DateTimeField()
    actor = models.CharField(max_length=150, help_text="User, 'pilot@<node>' or the system component.")
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["changed_at", "id"]
        indexes = [models.Index(fields=["job", "changed_at"], name="jobstatuslog_job_time")]

    def __str__(self):
        return f"{self.job_id}: {self.old_status} -> {self.new_status}"


class JobSignature(models.Model):
    """The server's signature of a job's executable fields, made when the job was created
    (jobs/signing.py, docs/job-signing.md). Apart from the hot Job row, which every heartbeat
    rewrites: written once with the job, read once by getJob's dispatch statement. With a
    database constraint (checked at commit, cheap next to the RSA signing): a signature must
    never outlive its job, or a PandaID used again would go out with another job's signature."""

    job = models.OneToOneField(Job, primary_key=True, on_delete=models.CASCADE, related_name="+")
    key_id = models.CharField(max_length=16, help_text="The signing key (SHA-256 of its public key, 16 hex digits).")
    signature = models.TextField(help_text="RSASSA-PKCS1-v1_5 / SHA-256 signature, base64.")

    def __str__(self):
        return f"signature of {self.job_id} (key {self.key_id})"


class JobReport(models.Model):
    """The pilot's final report, kept apart from the hot Job row (PanDA's JOB_OUTPUT_REPORT)."""

    job = models.OneToOneField(Job, on_delete=models.CASCADE, primary_key=True, related_name="report")
    reported_state = models.CharField(max_length=16)
    output_files = models.JSONField(default=dict, blank=True, help_text="The pilot's xml report: lfn -> attributes.")
    pilot_log = models.TextField(blank=True)
    received_at = models.DateTimeField()
    processed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"report of {self.job_id}"


class BrokerageContext(models.Model):
    """What one brokerage pass found for a group of jobs with the same needs (docs/brokerage.md).

    The jobs of one batch with equal needs (memory, disk, walltime, cores, release, assigned site,
    site rules of their task or quota) share one row: 2,000 jobs of a task cost one context, not
    2,000 copies of the same rejection list."""

    created_at = models.DateTimeField()
    needs = models.JSONField(default=dict, help_text="The jobs' needs: memory_mb, disk_mb, walltime_s, cores, ...")
    n_sites = models.PositiveIntegerField(default=0, help_text="Sites considered.")
    n_eligible = models.PositiveIntegerField(default=0, help_text="Sites left once every rule was applied.")
    rejected = models.JSONField(
        default=dict, help_text='{reason: {"n": sites ruled out for it, "sites": [a few of them]}}'
    )

    class Meta:
        indexes = [models.Index(fields=["created_at"], name="brokeragecontext_created")]

    def __str__(self):
        return f"brokerage context {self.pk}: {self.n_eligible} of {self.n_sites} sites"


class BrokerageDecision(models.Model):
    """The latest brokerage decision about one job: the site it chose (or why none), the candidates
    it drew from with their weights, and a link to the shared context (needs, rejected sites).

    One row per job: a job retried by brokerage every half minute while no site fits keeps only
    its latest decision. Like JobStatusLog, no database constraints: rows are written in bulk next
    to their job by the brokerage only (jobs/services/brokerage_sql.py)."""

    class Outcome(models.TextChoices):
        PICKED = "picked", "picked among the candidates by weight"
        KEPT = "kept", "the job came with a site, which can run it"
        UNFIT = "unfit", "the job came with a site, which cannot run it"
        NO_SITE = "no_site", "no site can run it"
        HELD = "held", "held back (a quota or a rule), not brokered now"

    job = models.OneToOneField(
        Job, primary_key=True, on_delete=models.CASCADE, db_constraint=False, related_name="brokerage_decision"
    )
    decided_at = models.DateTimeField()
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    site = models.ForeignKey(
        Site, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False,
        related_name="+", help_text="The site chosen (empty when none).",
    )  # fmt: skip
    candidates = models.JSONField(
        default=list, blank=True, help_text="[[site, weight, share of the input there], ...], best first (top N)."
    )
    context = models.ForeignKey(
        BrokerageContext, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False,
        related_name="+",
    )  # fmt: skip
    diag = models.CharField(max_length=250, blank=True, help_text="Why no site (empty when one was chosen).")

    def __str__(self):
        return f"brokerage of {self.job_id}: {self.outcome}"


class RetryRule(models.Model):
    """What to do with a failed job whose error matches (PanDA's RETRYERRORS + RETRYACTIONS).

    Rules are tried in `position` order (then id); the first active rule that matches decides.
    Without a matching rule the defaults of jobs/services/retry_rules.py apply (docs/retries.md).
    """

    class Source(models.TextChoices):
        # The error columns of a job (jobs.errorcodes.ERROR_SOURCES).
        PILOT = "pilot", "pilot (pilot_error_code / _diag)"
        EXE = "exe", "payload (exe_error_code / _diag: the payload's exit code)"
        JOB_DISPATCHER = "job_dispatcher", "job dispatcher (watchers: lost heartbeat, timeouts)"
        DDM = "ddm", "DDM (setupper, adder)"
        BROKERAGE = "brokerage", "brokerage"
        TASK_BUFFER = "task_buffer", "task buffer (kills, reassignments)"
        SUP = "sup", "supervisor"
        SERVER = "server", "server"

    class Action(models.TextChoices):
        NO_RETRY = "no_retry", "no retry: the error is hopeless"
        LIMIT_RETRY = "limit_retry", "retry while the job has had fewer than `parameter` attempts (empty: max_attempt)"
        INCREASE_MEMORY = "increase_memory", "retry with `parameter` MB more memory (default 1000)"
        INCREASE_MEMORY_XTIMES = "increase_memory_xtimes", "retry with `parameter` times the memory (default 2)"
        INCREASE_WALLTIME = "increase_walltime", "retry with `parameter` seconds more walltime (default 3600)"

    position = models.PositiveIntegerField(default=100, help_text="Rules are tried in this order (then by id).")
    error_source = models.CharField(max_length=20, choices=Source.choices)
    error_code = models.IntegerField(null=True, blank=True, help_text="Empty: any error of this source.")
    diag_pattern = models.CharField(
        max_length=250, blank=True, help_text="Python regular expression searched for in the source's diagnostic."
    )
    action = models.CharField(max_length=24, choices=Action.choices)
    parameter = models.FloatField(null=True, blank=True, help_text="The action's parameter (see the action).")
    prod_source_label = models.CharField(max_length=20, blank=True, help_text="Only jobs with this label (empty: all).")
    sw_release = models.CharField(max_length=64, blank=True, help_text="Only jobs of this release (empty: all).")
    active = models.BooleanField(
        default=True, help_text="A passive rule changes nothing; the job's state log says what it would have done."
    )
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    modified_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self):
        code = "any" if self.error_code is None else self.error_code
        return f"rule {self.pk}: {self.error_source} {code} → {self.action}"

    def clean(self):
        errors = {}
        if self.diag_pattern:
            try:
                re.compile(self.diag_pattern)
            except re.error as exc:
                errors["diag_pattern"] = f"not a valid regular expression: {exc}"
        p = self.parameter
        if self.action == self.Action.NO_RETRY and p is not None:
            errors["parameter"] = "no_retry takes no parameter"
        elif self.action == self.Action.LIMIT_RETRY and p is not None and (p < 1 or p != int(p)):
            errors["parameter"] = "limit_retry: give the number of attempts (a whole number, at least 1)"
        elif self.action == self.Action.INCREASE_MEMORY_XTIMES and p is not None and p <= 1:
            errors["parameter"] = "increase_memory_xtimes: give a factor above 1"
        elif self.action in (self.Action.INCREASE_MEMORY, self.Action.INCREASE_WALLTIME) and p is not None and p <= 0:
            errors["parameter"] = f"{self.action}: give a positive step"
        if errors:
            raise ValidationError(errors)


class PeekRequest(models.Model):
    """A look into a running job asked for from its page or the API (docs/job-control.md).

    The request travels to the job's pilot in an updateJob answer; the pilot runs the fixed,
    read-only action its `kind` names (nothing in the request is ever executed) and sends the
    text back with a later updateJob. Written by jobs.services.peek only.
    """

    class Kind(models.TextChoices):
        TAIL = "tail", "the end of the payload's stdout and stderr"
        LS = "ls", "a listing of the job's work directory"
        PS = "ps", "the payload's processes"

    class State(models.TextChoices):
        PENDING = "pending", "waiting for the pilot"
        ANSWERED = "answered", "answered by the pilot"
        EXPIRED = "expired", "not answered: the job ended or its pilot did not answer in time"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="peek_requests")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField()
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    answered_at = models.DateTimeField(null=True, blank=True)
    answer = models.TextField(blank=True, help_text="The pilot's answer (at most 64 KB), or why there is none.")

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            # One pending request per kind and job: a second click waits for the same answer.
            models.UniqueConstraint(
                fields=["job", "kind"], condition=Q(state="pending"), name="peekrequest_one_pending_per_kind"
            ),
        ]

    def __str__(self):
        return f"{self.kind} of {self.job_id} ({self.state})"


class JobDebugOutput(models.Model):
    """The payload stdout tail a pilot in debug mode sends with every heartbeat (PanDA's jobsDebug).

    One row per job, replaced by each heartbeat that carries one: only the latest tail matters."""

    job = models.OneToOneField(Job, on_delete=models.CASCADE, primary_key=True, related_name="debug_output")
    stdout = models.TextField(blank=True)
    received_at = models.DateTimeField()

    def __str__(self):
        return f"debug output of {self.job_id}"

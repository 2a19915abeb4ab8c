"""Quota rules and the usage they are checked against.

Usage is maintained incrementally (quotas.services.accounting folds the job state log
into these counters) and corrected by a periodic recount (quotas.services.reconcile),
so a submission never rescans the job tables."""

from django.db import models

from sites.models import Site

from .choices import AccountKind, Resource, SubjectKind


class QuotaRule(models.Model):
    """A soft and/or hard limit on one resource for a role (default), a user or a group (override).

    Hard: submissions that would exceed it are refused (running jobs over it are throttled).
    Soft: new jobs get a lower priority while usage is over it. Empty = no limit."""

    subject_kind = models.CharField(max_length=5, choices=SubjectKind.choices)
    subject_name = models.CharField(
        max_length=150, help_text="Role name (user, production_manager, group, ...), user name or group name."
    )
    resource = models.CharField(max_length=16, choices=Resource.choices)
    site = models.ForeignKey(
        Site, null=True, blank=True, on_delete=models.CASCADE,
        help_text="storage_bytes only: a limit on one site's storage; empty = the total over all sites.",
    )  # fmt: skip
    soft_limit = models.BigIntegerField(null=True, blank=True)
    hard_limit = models.BigIntegerField(null=True, blank=True)
    comment = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subject_kind", "subject_name", "resource"],
                condition=models.Q(site__isnull=True),
                name="quotarule_unique_subject_resource",
            ),
            models.UniqueConstraint(
                fields=["subject_kind", "subject_name", "resource", "site"],
                condition=models.Q(site__isnull=False),
                name="quotarule_unique_subject_resource_site",
            ),
            models.CheckConstraint(
                condition=models.Q(site__isnull=True) | models.Q(resource=Resource.STORAGE_BYTES),
                name="quotarule_site_only_for_storage",
            ),
            models.CheckConstraint(
                condition=models.Q(soft_limit__isnull=True)
                | models.Q(hard_limit__isnull=True)
                | models.Q(soft_limit__lte=models.F("hard_limit")),
                name="quotarule_soft_at_most_hard",
            ),
        ]

    def __str__(self):
        return f"{self.subject_kind} {self.subject_name}: {self.resource} soft={self.soft_limit} hard={self.hard_limit}"


class AccountUsage(models.Model):
    """Jobs an account (a user or a physics group) has queued and running right now."""

    kind = models.CharField(max_length=5, choices=AccountKind.choices)
    name = models.CharField(max_length=150)
    queued_jobs = models.IntegerField(default=0)
    running_jobs = models.IntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "name"], name="accountusage_unique_account")]

    def __str__(self):
        return f"{self.kind} {self.name}: {self.queued_jobs} queued, {self.running_jobs} running"


class DailyUsage(models.Model):
    """One account's jobs and CPU per UTC day: the CPU quotas, the user statistics and their history."""

    kind = models.CharField(max_length=5, choices=AccountKind.choices)
    name = models.CharField(max_length=150)
    day = models.DateField()
    submitted = models.IntegerField(default=0)
    finished = models.IntegerField(default=0)
    failed = models.IntegerField(default=0)
    cancelled = models.IntegerField(default=0)
    cpu_seconds = models.BigIntegerField(default=0, help_text="CPU time of the jobs that ended this day.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "name", "day"], name="dailyusage_unique_account_day")]
        ordering = ["day"]

    def __str__(self):
        return f"{self.kind} {self.name} on {self.day}"

from django.contrib import admin

from pandamon.admin_base import RecordAdmin

from .models import (
    BrokerageContext,
    BrokerageDecision,
    Job,
    JobDebugOutput,
    JobFile,
    JobReport,
    JobSignature,
    JobStatusLog,
    PeekRequest,
    RetryRule,
)


class JobFileInline(admin.TabularInline):
    model = JobFile
    extra = 0
    fields = ["type", "lfn", "dataset", "fsize", "checksum", "status"]
    readonly_fields = fields
    can_delete = False


class JobStatusLogInline(admin.TabularInline):
    model = JobStatusLog
    extra = 0
    fields = ["changed_at", "old_status", "new_status", "actor", "reason"]
    readonly_fields = fields
    can_delete = False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    # Jobs change state only through the services (state machine); the admin reads them.
    list_display = [
        "pandaid",
        "job_name",
        "status",
        "computing_site",
        "prod_source_label",
        "prod_user_name",
        "current_priority",
        "modification_time",
    ]
    list_filter = ["status", "prod_source_label", "computing_site__cloud"]
    search_fields = ["=pandaid", "job_name", "prod_user_name"]
    list_select_related = ["computing_site"]
    inlines = [JobFileInline, JobStatusLogInline]
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Job._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(JobFile)
class JobFileAdmin(admin.ModelAdmin):
    list_display = ["lfn", "type", "job", "dataset", "status", "fsize"]
    list_filter = ["type", "status"]
    search_fields = ["lfn", "dataset", "guid"]
    raw_id_fields = ["job"]
    show_full_result_count = False


@admin.register(JobStatusLog)
class JobStatusLogAdmin(admin.ModelAdmin):
    list_display = ["job", "old_status", "new_status", "changed_at", "actor"]
    list_filter = ["new_status"]
    search_fields = ["=job__pandaid", "actor"]
    raw_id_fields = ["job"]
    show_full_result_count = False


@admin.register(JobReport)
class JobReportAdmin(admin.ModelAdmin):
    list_display = ["job", "reported_state", "received_at", "processed_at"]
    raw_id_fields = ["job"]


@admin.register(RetryRule)
class RetryRuleAdmin(admin.ModelAdmin):
    """The retry module's rules (docs/retries.md): the first active match decides a failed job's retry."""

    list_display = ["id", "position", "error_source", "error_code", "diag_pattern", "action", "parameter",
                    "prod_source_label", "sw_release", "active", "comment"]  # fmt: skip
    list_display_links = ["id"]
    list_editable = ["position", "active"]
    list_filter = ["active", "action", "error_source"]
    search_fields = ["comment", "diag_pattern", "=error_code"]
    ordering = ["position", "id"]
    fieldsets = [
        (None, {"fields": ["position", "active", "comment"]}),
        ("Matches", {"fields": ["error_source", "error_code", "diag_pattern", "prod_source_label", "sw_release"]}),
        ("Does", {"fields": ["action", "parameter"]}),
    ]


@admin.register(BrokerageDecision)
class BrokerageDecisionAdmin(admin.ModelAdmin):
    # Written by the brokerage only (one row per job, its latest decision); read here.
    list_display = ["job", "decided_at", "outcome", "site", "diag"]
    list_filter = ["outcome"]
    search_fields = ["=job__pandaid"]
    raw_id_fields = ["job", "context"]
    list_select_related = ["site"]
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in BrokerageDecision._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(BrokerageContext)
class BrokerageContextAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "n_sites", "n_eligible", "needs"]
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in BrokerageContext._meta.fields]

    def has_add_permission(self, request):
        return False


# Job control and signing records: written by the pilot protocol and the job page's services
# (docs/job-control.md, docs/job-signing.md), so the admin shows them without editing.
@admin.register(PeekRequest)
class PeekRequestAdmin(RecordAdmin):
    list_display = ["job", "kind", "state", "requested_by", "requested_at", "answered_at"]
    list_filter = ["kind", "state"]
    raw_id_fields = ["job"]


@admin.register(JobDebugOutput)
class JobDebugOutputAdmin(RecordAdmin):
    list_display = ["job", "received_at"]
    raw_id_fields = ["job"]


@admin.register(JobSignature)
class JobSignatureAdmin(RecordAdmin):
    list_display = ["job", "key_id"]
    list_filter = ["key_id"]
    raw_id_fields = ["job"]

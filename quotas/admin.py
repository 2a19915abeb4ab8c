from django.contrib import admin

from .models import AccountUsage, DailyUsage, QuotaRule


@admin.register(QuotaRule)
class QuotaRuleAdmin(admin.ModelAdmin):
    list_display = ["subject_kind", "subject_name", "resource", "site", "soft_limit", "hard_limit", "comment"]
    list_filter = ["subject_kind", "resource", "site"]
    search_fields = ["subject_name", "comment"]
    list_editable = ["soft_limit", "hard_limit"]


@admin.register(AccountUsage)
class AccountUsageAdmin(admin.ModelAdmin):
    """Kept by the accounting fold; read-only here (the hourly recount corrects drift)."""

    list_display = ["kind", "name", "queued_jobs", "running_jobs", "updated_at"]
    list_filter = ["kind"]
    search_fields = ["name"]
    readonly_fields = ["kind", "name", "queued_jobs", "running_jobs", "updated_at"]


@admin.register(DailyUsage)
class DailyUsageAdmin(admin.ModelAdmin):
    list_display = ["day", "kind", "name", "submitted", "finished", "failed", "cancelled", "cpu_seconds"]
    list_filter = ["kind", "day"]
    search_fields = ["name"]
    date_hierarchy = "day"
    readonly_fields = ["kind", "name", "day", "submitted", "finished", "failed", "cancelled", "cpu_seconds"]

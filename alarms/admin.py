from django.contrib import admin

from .models import (
    Alarm,
    AlarmSubscription,
    JobCountSnapshot,
    NotificationPreference,
    SentNotification,
    StorageSnapshot,
    TransferChannelSnapshot,
    TransferQueueSnapshot,
)


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(admin.ModelAdmin):
    list_display = ["user", "email", "on_start", "on_finish", "on_failure"]
    list_filter = ["on_start", "on_finish", "on_failure"]
    search_fields = ["user__username", "email"]
    raw_id_fields = ["user"]


@admin.register(SentNotification)
class SentNotificationAdmin(admin.ModelAdmin):
    list_display = ["sent_at", "user", "address", "subject", "events"]
    search_fields = ["user__username", "address", "subject"]
    readonly_fields = ["user", "address", "subject", "events", "sent_at"]
    show_full_result_count = False


@admin.register(Alarm)
class AlarmAdmin(admin.ModelAdmin):
    list_display = ["last_seen", "severity", "state", "category", "subject_kind", "subject", "count", "message"]
    list_filter = ["state", "severity", "category", "subject_kind"]
    search_fields = ["subject", "message", "category"]
    raw_id_fields = ["acknowledged_by"]
    show_full_result_count = False


@admin.register(AlarmSubscription)
class AlarmSubscriptionAdmin(admin.ModelAdmin):
    list_display = ["user", "category", "site", "min_severity"]
    list_filter = ["min_severity"]
    search_fields = ["user__username", "category", "site"]
    raw_id_fields = ["user"]


@admin.register(JobCountSnapshot)
class JobCountSnapshotAdmin(admin.ModelAdmin):
    """Written by the history snapshots; read-only here."""

    list_display = ["taken_at", "site", "status", "n"]
    list_filter = ["status"]
    search_fields = ["site__name", "status"]
    readonly_fields = ["taken_at", "site", "status", "n"]
    date_hierarchy = "taken_at"
    show_full_result_count = False


class SnapshotAdmin(admin.ModelAdmin):
    """Written by the history snapshots; read-only here."""

    date_hierarchy = "taken_at"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(TransferChannelSnapshot)
class TransferChannelSnapshotAdmin(SnapshotAdmin):
    list_display = ["taken_at", "source", "destination", "files_done", "files_failed", "bytes_done"]
    list_select_related = ["source", "destination"]
    search_fields = ["source__name", "destination__name"]


@admin.register(TransferQueueSnapshot)
class TransferQueueSnapshotAdmin(SnapshotAdmin):
    list_display = ["taken_at", "destination", "queued", "submitted"]
    list_select_related = ["destination"]
    search_fields = ["destination__name"]


@admin.register(StorageSnapshot)
class StorageSnapshotAdmin(SnapshotAdmin):
    list_display = ["taken_at", "site", "used_bytes", "free_bytes", "total_bytes", "catalog_bytes", "reported_at"]
    list_select_related = ["site"]
    search_fields = ["site__name"]

from django.contrib import admin

from .models import NotificationPreference, SentNotification


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

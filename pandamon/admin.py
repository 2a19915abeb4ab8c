from django.contrib import admin

from .admin_base import BigTableAdmin
from .models import Identity, LogCursor, LoginThrottle, PhysicsGroup, WorkerRun


@admin.register(WorkerRun)
class WorkerRunAdmin(admin.ModelAdmin):
    list_display = ["name", "status", "started_at", "finished_at", "counts"]
    list_filter = ["name", "status"]
    readonly_fields = ["name", "status", "started_at", "finished_at", "counts", "error"]


@admin.register(Identity)
class IdentityAdmin(admin.ModelAdmin):
    list_display = ["user", "dn", "vo"]
    list_filter = ["vo"]
    search_fields = ["user__username", "dn"]
    autocomplete_fields = ["user"]


@admin.register(PhysicsGroup)
class PhysicsGroupAdmin(admin.ModelAdmin):
    list_display = ["name", "vo", "description"]
    list_filter = ["vo"]
    search_fields = ["name", "description"]
    filter_horizontal = ["members"]


@admin.register(LogCursor)
class LogCursorAdmin(admin.ModelAdmin):
    list_display = ["name", "last_id", "updated_at"]
    readonly_fields = ["name", "last_id", "updated_at"]


@admin.register(LoginThrottle)
class LoginThrottleAdmin(BigTableAdmin):
    """Failed logins per user name and address; deleting a row lifts its lock."""

    list_display = ["username", "address", "failures", "first_failure_at", "locked_until"]
    search_fields = ["username", "address"]
    readonly_fields = ["username", "address", "failures", "first_failure_at", "locked_until"]

    def has_add_permission(self, request):
        return False

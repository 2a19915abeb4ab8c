from django.contrib import admin

from .models import WorkerRun


@admin.register(WorkerRun)
class WorkerRunAdmin(admin.ModelAdmin):
    list_display = ["name", "status", "started_at", "finished_at", "counts"]
    list_filter = ["name", "status"]
    readonly_fields = ["name", "status", "started_at", "finished_at", "counts", "error"]

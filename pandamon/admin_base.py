"""Admin base classes shared by the apps' admin modules."""

from django.contrib import admin


class BigTableAdmin(admin.ModelAdmin):
    # "N of M selected" would COUNT(*) the whole table on every page.
    show_full_result_count = False
    list_per_page = 100


class RecordAdmin(BigTableAdmin):
    """Records a service or a protocol writes (decisions, pilots, signatures, peeks): the admin shows
    them, and changes go through the pages and APIs whose services check roles and protections."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

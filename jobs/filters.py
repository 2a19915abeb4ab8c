"""The one FilterSet for jobs, shared by the API, the portal pages and the selectors."""

import django_filters as filters

from sites.models import Site

from .choices import JobStatus
from .models import Job


class JobFilterSet(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=JobStatus.choices, help_text="Job state (repeat for several).")
    computing_site = filters.ModelMultipleChoiceFilter(
        field_name="computing_site__name", to_field_name="name", queryset=Site.objects.all(), help_text="Site name."
    )
    cloud = filters.CharFilter()
    prod_source_label = filters.CharFilter()
    prod_user_name = filters.CharFilter()
    task_id = filters.NumberFilter()
    jobset_id = filters.NumberFilter()
    job_name = filters.CharFilter(lookup_expr="startswith")
    modified_after = filters.IsoDateTimeFilter(field_name="modification_time", lookup_expr="gte")
    modified_before = filters.IsoDateTimeFilter(field_name="modification_time", lookup_expr="lt")
    created_after = filters.IsoDateTimeFilter(field_name="creation_time", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="creation_time", lookup_expr="lt")

    class Meta:
        model = Job
        fields = ["status", "computing_site", "cloud", "prod_source_label", "prod_user_name", "task_id", "jobset_id"]

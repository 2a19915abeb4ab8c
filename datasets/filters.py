"""The FilterSets of the catalog, shared by the API and the dataset browser pages."""

import django_filters as filters

from .choices import DatasetKind, DatasetState
from .models import Dataset, File
from .selectors import name_filter


class DatasetFilterSet(filters.FilterSet):
    name = filters.CharFilter(method="filter_name", help_text="Name or pattern with * wildcards, e.g. mc11.*.AOD.*")
    kind = filters.MultipleChoiceFilter(choices=DatasetKind.choices)
    state = filters.MultipleChoiceFilter(choices=DatasetState.choices)
    category = filters.CharFilter(help_text="Browser category: mc, csc, user, dispatch, destination, ...")
    owner = filters.CharFilter(field_name="owner__username")
    series = filters.CharFilter()
    number = filters.CharFilter()
    physics = filters.CharFilter()
    stage = filters.CharFilter()
    format = filters.CharFilter()
    release = filters.CharFilter()

    class Meta:
        model = Dataset
        fields = ["name", "kind", "state", "category", "owner", "series", "number", "physics", "stage", "format"]

    def filter_name(self, queryset, name, value):
        return queryset.filter(name_filter(value))


class FileFilterSet(filters.FilterSet):
    lfn = filters.CharFilter(method="filter_lfn", help_text="LFN or pattern with * wildcards.")
    guid = filters.UUIDFilter()

    class Meta:
        model = File
        fields = ["lfn", "guid"]

    def filter_lfn(self, queryset, name, value):
        return queryset.filter(name_filter(value, field="lfn"))

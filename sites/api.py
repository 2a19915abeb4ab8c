"""REST API for sites: /api/v1/sites/ (read-only; sites are edited in the admin)."""

from rest_framework import serializers, viewsets

from pandamon.api import KeysetPagination

from .filters import SiteFilterSet
from .models import Site, StorageSpace
from .selectors import site_list


class StorageSpaceSerializer(serializers.ModelSerializer):
    class Meta:
        model = StorageSpace
        fields = ["used_bytes", "free_bytes", "total_bytes", "reported_at", "reported_by"]


class SiteSerializer(serializers.ModelSerializer):
    cloud = serializers.SlugRelatedField(slug_field="name", read_only=True)
    storage_space = StorageSpaceSerializer(read_only=True, default=None)
    last_pilot_contact = serializers.DateTimeField(
        source="pilot_activity.last_contact_at", read_only=True, default=None
    )

    class Meta:
        model = Site
        fields = [
            "name", "cloud", "tier", "status", "grid_flavour", "max_memory_mb", "max_disk_mb", "max_walltime_s",
            "cores", "max_running_jobs", "heartbeat_timeout_s", "storage_endpoint", "storage_http_url", "transfer_tools", "storage_capacity_gb", "storage_space", "last_pilot_contact",
        ]  # fmt: skip


class SitePagination(KeysetPagination):
    ordering = "name"


class SiteViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = site_list()
    serializer_class = SiteSerializer
    filterset_class = SiteFilterSet
    pagination_class = SitePagination
    lookup_field = "name"
    lookup_value_regex = r"[A-Za-z0-9_.\-]+"

"""Reads for sites."""

from .models import Site


def site_list():
    return Site.objects.select_related("cloud", "pilot_activity").order_by("cloud__name", "tier", "name")

"""Reads for sites."""

from datetime import timedelta

from django.conf import settings

from .models import Site


def site_list():
    return Site.objects.select_related("cloud", "pilot_activity", "storage_space").order_by(
        "cloud__name", "tier", "name"
    )


def pilot_silence():
    """How long without a pilot's call a site with activated jobs is flagged (PANDA_ALARM_NO_PILOT_MINUTES)."""
    return timedelta(minutes=settings.PANDA_ALARMS["NO_PILOT_MINUTES"])


def pilots_silent(last_contact, now):
    """No pilot has called from the site for longer than pilot_silence(), or ever."""
    return last_contact is None or now - last_contact > pilot_silence()

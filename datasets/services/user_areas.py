"""User storage areas: user-requested transfers land in a separate area of each site, with its own quota.

Once a data operator sizes a site's user area (SiteDDMConfig.user_area_quota_bytes), a transfer
of activity `user` to the site writes under `<storage>/userarea/<md5[0:2]>/<md5[2:4]>/<lfn>`
instead of the production layout, so the bytes users pull to a site are counted apart and
bounded by SiteDDMConfig.user_area_quota_bytes: users cannot fill the production space. A user
transfer that would take the area over its quota is not attempted; it waits (USER_AREA_WAIT)
without using up an attempt, with the reason as its error. Usage grows as copies land and is
recounted from the replica catalog by `recount` (periodically), which also sees deletions.
"""

import hashlib
from datetime import timedelta

from django.db.models import F, Sum
from django.utils import timezone

from ..models import FileReplica, SiteDDMConfig

AREA_DIRECTORY = "userarea"
USER_AREA_WAIT = timedelta(minutes=10)


def user_area_root(site):
    return f"{site.storage_endpoint.rstrip('/')}/{AREA_DIRECTORY}"


def user_area_pfn(site, lfn):
    digest = hashlib.md5(lfn.encode(), usedforsecurity=False).hexdigest()
    return f"{user_area_root(site)}/{digest[:2]}/{digest[2:4]}/{lfn}"


class Budget:
    """The user areas' room for one batch: quota minus usage minus what the batch already took.

    A site has a user area once a data operator sizes it (a quota, possibly 0); until then user
    transfers land in the production layout as before."""

    def __init__(self, site_ids):
        self.configs = {
            c.site_id: c
            for c in SiteDDMConfig.objects.filter(site_id__in=site_ids, user_area_quota_bytes__isnull=False)
        }
        self.taken = {}

    def has_area(self, site):
        return site.pk in self.configs

    def take(self, site, size):
        """Reserve `size` bytes at the site's user area; returns the refusal text, or "" when it fits."""
        config = self.configs.get(site.pk)
        if config is None:
            return ""
        used = config.user_area_used_bytes + self.taken.get(site.pk, 0)
        if used + size > config.user_area_quota_bytes:
            return (
                f"user area at {site.name} full: {used:,} of {config.user_area_quota_bytes:,} bytes used; "
                f"waits for room (user transfers never use production space)"
            )
        self.taken[site.pk] = self.taken.get(site.pk, 0) + size
        return ""


def note_copied(bytes_by_site):
    """Add landed user copies to their areas' usage (in the registering transaction)."""
    for site_id, size in bytes_by_site.items():
        SiteDDMConfig.objects.filter(site_id=site_id).update(user_area_used_bytes=F("user_area_used_bytes") + size)


def recount(*, now=None):
    """Recount every configured user area from the replica catalog; returns how many areas."""
    now = now or timezone.now()
    n = 0
    for config in SiteDDMConfig.objects.select_related("site").exclude(site__storage_endpoint=""):
        used = FileReplica.objects.filter(
            site_id=config.site_id, pfn__startswith=user_area_root(config.site) + "/"
        ).aggregate(total=Sum("file__fsize"))["total"]
        SiteDDMConfig.objects.filter(pk=config.pk).update(user_area_used_bytes=used or 0, user_area_counted_at=now)
        n += 1
    return n


def set_quota(*, user, site_name, quota_bytes):
    """A data operator sizes a site's user area (None = no user area: user transfers use the production layout)."""
    from pandamon.errors import InvalidInput, NotFound
    from sites.models import Site

    from .policy_admin import check_operator

    check_operator(user, "size user areas")
    if quota_bytes is not None and (
        not isinstance(quota_bytes, int) or isinstance(quota_bytes, bool) or not 0 <= quota_bytes <= 10**18
    ):
        raise InvalidInput("quota_bytes: a number of bytes from 0, or null for no user area")
    site = Site.objects.filter(name=site_name).first()
    if site is None:
        raise NotFound(f"unknown site '{site_name}'")
    config, _ = SiteDDMConfig.objects.get_or_create(site=site)
    SiteDDMConfig.objects.filter(pk=config.pk).update(user_area_quota_bytes=quota_bytes)
    config.user_area_quota_bytes = quota_bytes
    return config

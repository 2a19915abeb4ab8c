"""Writes and pilot authentication for sites."""

import hashlib
import os
import secrets
import shutil

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from pandamon.cache import TtlCache
from pandamon.errors import InvalidInput, NotFound, PermissionDenied

from . import contacts
from .models import PilotCredential, Site, StorageSpace


def hash_token(token):
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def create_pilot_credential(*, name, sites):
    """Create a credential bound to `sites`; returns (credential, token). The token is shown once."""
    token = secrets.token_urlsafe(32)
    credential = PilotCredential.objects.create(name=name, token_sha256=hash_token(token))
    credential.sites.set(sites)
    return credential, token


def _auth_ttl():
    return settings.PANDA["PILOT_AUTH_CACHE_SECONDS"]


_site_cache = TtlCache(_auth_ttl)
_credential_cache = TtlCache(_auth_ttl)


def clear_pilot_caches():
    _site_cache.clear()
    _credential_cache.clear()


def _load_site(name):
    return Site.objects.filter(name=name).select_related("cloud").first()


def _load_credential(token_hash):
    credential = PilotCredential.objects.filter(token_sha256=token_hash, active=True).first()
    if credential is None:
        return None
    return credential.pk, frozenset(credential.sites.values_list("pk", flat=True))


def pilot_site(*, site_name, token):
    """The Site a pilot may act for, or a clear refusal.

    A pilot needs a credential bound to the site unless the site trusts
    unauthenticated pilots (a closed local batch farm).
    """
    site = _site_cache.get(("site", site_name), lambda: _load_site(site_name))
    if site is None:
        raise NotFound(f"unknown site '{site_name}'")
    if token:
        granted = _credential_cache.get(("cred", hash_token(token)), lambda: _load_credential(hash_token(token)))
        if granted is None:
            raise PermissionDenied("pilot credential refused: unknown or revoked token")
        if site.pk not in granted[1]:
            raise PermissionDenied(f"pilot credential is not bound to site '{site_name}'")
        return site
    if site.trust_unauthenticated_pilots:
        return site
    raise PermissionDenied(f"site '{site_name}' needs a pilot credential (Authorization: Bearer <token>)")


def record_pilot_contact(*, site, node, getjob=False, jobs_sent=0, update=False):
    """Count a pilot's getJob or updateJob at its site (buffered; see sites/contacts.py)."""
    contacts.buffer.record(site_id=site.pk, node=node, getjob=getjob, jobs_sent=jobs_sent, update=update)


def set_site_status(*, site_name, status):
    updated = Site.objects.filter(name=site_name).update(status=status)
    if not updated:
        raise NotFound(f"unknown site '{site_name}'")


def record_storage_space(*, site, used_bytes, free_bytes, total_bytes, reported_by):
    """Keep a site's latest storage space report (the monitor and the brokerage read it)."""
    values = {"used_bytes": used_bytes, "free_bytes": free_bytes, "total_bytes": total_bytes}
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidInput(f"{name}: give a non-negative integer number of bytes")
    StorageSpace.objects.update_or_create(
        site=site, defaults={**values, "reported_at": timezone.now(), "reported_by": reported_by[:150]}
    )


def measure_storage_space():
    """Measure the sites whose storage is a directory this server can see (the storage agent's report)."""
    measured = 0
    for site in Site.objects.exclude(storage_endpoint="").exclude(storage_endpoint__startswith="http"):
        path = site.storage_endpoint.removeprefix("file://")
        if not os.path.isdir(path):
            continue
        usage = shutil.disk_usage(path)
        record_storage_space(site=site, used_bytes=usage.used, free_bytes=usage.free, total_bytes=usage.total,
                             reported_by="storage agent")  # fmt: skip
        measured += 1
    return {"measured": measured}

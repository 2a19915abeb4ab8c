"""Consistency check: a site's storage against its replica catalog (like Rucio's auditor).

Dark files are on the storage and in no replica of the catalog; lost replicas are
in the catalog and not on the storage. Only directory storage can be listed here.
The check reports (a ConsistencyCheck row, the first 1000 of each kind); with
`fix`, lost replicas are removed from the catalog, which wakes the subscriptions
that want them so the files are transferred again. Dark files are never deleted
automatically: an operator looks first (they may be a transfer that is just finishing).
"""

import os
import time

from django.db import transaction
from django.utils import timezone

from client.storage import local_path
from sites.models import Site

from ..models import ConsistencyCheck, FileReplica
from .replicas import remove_replicas_at

SAMPLE = 1000
# Files younger than this may be a copy in flight, not dark data.
MIN_AGE_SECONDS = 3600
TEMPORARY_SUFFIX = ".part"


def check_all_sites():
    counts = {"sites": 0, "dark": 0, "lost": 0}
    for site in Site.objects.exclude(storage_endpoint="").exclude(storage_endpoint__startswith="http"):
        check = check_site(site)
        counts["sites"] += 1
        counts["dark"] += check.n_dark
        counts["lost"] += check.n_lost
    return counts


def check_site(site, *, fix=False, min_age=MIN_AGE_SECONDS):
    """Compare `site`'s directory storage with its catalog; returns the saved ConsistencyCheck."""
    check = ConsistencyCheck.objects.create(site=site, started_at=timezone.now())
    root = _local(site.storage_endpoint)
    if not root or not os.path.isdir(root):
        check.error = f"storage of {site.name} is not a local directory: {site.storage_endpoint or '(none)'}"
        check.finished_at = timezone.now()
        check.save()
        return check
    catalog = {_local(pfn): (file_id, lfn) for file_id, lfn, pfn in _replicas(site)}
    on_storage = set(_storage_files(root))
    dark = sorted(path for path in on_storage - catalog.keys() if _old_enough(path, min_age))
    lost = sorted(path for path in catalog.keys() - on_storage if _inside(path, root))
    check.files_on_storage, check.replicas_in_catalog = len(on_storage), len(catalog)
    check.n_dark, check.n_lost = len(dark), len(lost)
    check.dark, check.lost = dark[:SAMPLE], [catalog[path][1] for path in lost[:SAMPLE]]
    if fix and lost:
        with transaction.atomic():
            locked = Site.objects.select_for_update().get(pk=site.pk)
            remove_replicas_at(locked, [catalog[path][0] for path in lost])
        check.fixed = True
    check.finished_at = timezone.now()
    check.save()
    return check


def _replicas(site):
    return FileReplica.objects.filter(site=site).values_list("file_id", "file__lfn", "pfn").iterator(chunk_size=5000)


def _local(location):
    if location.startswith(("http://", "https://")):
        return ""
    return os.path.normpath(os.path.abspath(local_path(location))) if location else ""


def _storage_files(root):
    for directory, _, names in os.walk(root):
        for name in names:
            if name.startswith(".") and name.endswith(TEMPORARY_SUFFIX):
                continue  # a transfer's temporary file
            yield os.path.join(directory, name)


def _inside(path, root):
    return bool(path) and path.startswith(root.rstrip(os.sep) + os.sep)


def _old_enough(path, min_age):
    try:
        return time.time() - os.path.getmtime(path) >= min_age
    except OSError:  # gone meanwhile: not dark
        return False

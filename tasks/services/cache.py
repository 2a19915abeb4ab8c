"""The script cache: users' code (a script, or a tarball of their work directory), content-addressed.

A file is stored once, as <CACHE_DIR>/<sha256 of its bytes>; uploading the same bytes
again stores nothing new, so an upload can be repeated safely. Who uploaded a file is
kept as an empty marker <CACHE_DIR>/owners/<sha256>/<user id>: its uploaders and admins
may read it back; pilots (any active pilot credential) read every file, since they run
everyone's jobs; nobody else does: user code is not world-readable.

A task's transformation may then be the file's URL, `<server>/cache/<sha256>`: the pilot
downloads it with its credential and runs it, or unpacks it and runs the script it names
(pilot/transformation.py). A submission may only use a cached file its submitter may read
(check_transformation), so nobody runs, and gets back in a log tarball, another's code.

Entries are kept: jobs are retried and tasks resubmitted long after the upload, and a
file is stored once however often it is used. Removing old entries is an operator's
job (docs/tasks.md): delete <sha256> and owners/<sha256>/ when no live task uses them.
"""

import hashlib
import os
import re
import tarfile
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from pandamon import roles
from pandamon.errors import InvalidInput, NotFound, PermissionDenied, ServiceError

SHA256 = re.compile(r"^[0-9a-f]{64}$")
URL_PATH = re.compile(r"^/cache/([0-9a-f]{64})$")
CHUNK = 1024 * 1024


class TooLarge(ServiceError):
    status_code = 413


@dataclass(frozen=True)
class Entry:
    sha256: str
    size: int
    kind: str  # "script" (starts with #!), "tarball", or "file"
    created: bool  # new for this uploader (False: they had uploaded these bytes before)


def cache_dir() -> Path:
    return Path(settings.PANDA["CACHE_DIR"])


def max_bytes() -> int:
    return settings.PANDA["CACHE_MAX_BYTES"]


def too_large_message(size=None):
    limit = f"the cache takes at most {_size(max_bytes())} (PANDA_CACHE_MAX_MB)"
    return f"the upload is {_size(size)}; {limit}" if size else f"the upload is too large: {limit}"


def _size(n):
    return f"{n / 1024 / 1024:.3g} MB" if n >= 1024 * 1024 else f"{n:,} bytes"


def store(*, user, chunks) -> Entry:
    """Store the bytes of `chunks` (an iterable of bytes) for `user`; TooLarge past the limit."""
    root = cache_dir()
    incoming = root / "incoming"
    incoming.mkdir(mode=0o750, parents=True, exist_ok=True)
    digest, size, limit = hashlib.sha256(), 0, max_bytes()
    handle, temporary = tempfile.mkstemp(dir=incoming)
    try:
        with os.fdopen(handle, "wb") as target:
            for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise TooLarge(too_large_message())
                digest.update(chunk)
                target.write(chunk)
        if size == 0:
            raise InvalidInput("the upload is empty: send the file's bytes as the request body (or as the "
                               "multipart field 'file')")  # fmt: skip
        sha256 = digest.hexdigest()
        final = root / sha256
        os.chmod(temporary, 0o640)
        # Same name, same bytes: whichever of two concurrent uploads lands last changes nothing.
        os.replace(temporary, final)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    created = _add_owner(sha256, user)
    return Entry(sha256=sha256, size=size, kind=kind_of(final), created=created)


def _owner_marker(sha256, user) -> Path:
    return cache_dir() / "owners" / sha256 / str(user.pk)


def _add_owner(sha256, user) -> bool:
    marker = _owner_marker(sha256, user)
    if marker.exists():
        return False
    marker.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    marker.touch()
    return True


def kind_of(path) -> str:
    with open(path, "rb") as source:
        if source.read(2) == b"#!":
            return "script"
    return "tarball" if tarfile.is_tarfile(path) else "file"


def path_of(sha256) -> Path:
    """The stored file of `sha256`; NotFound when there is none."""
    if not SHA256.match(sha256 or ""):
        raise NotFound(f"{sha256[:80]!r} is not a cache key (64 lowercase hex digits of a SHA-256)")
    path = cache_dir() / sha256
    if not path.is_file():
        raise NotFound(f"no cached file {sha256}")
    return path


def may_read(*, sha256, user=None, pilot=False) -> bool:
    """Pilots read every file; a user the files they uploaded; admins everything."""
    if pilot or roles.is_admin(user):
        return True
    return bool(user and user.is_authenticated and _owner_marker(sha256, user).exists())


def check_may_read(*, sha256, user=None, pilot=False) -> Path:
    path = path_of(sha256)
    if not may_read(sha256=sha256, user=user, pilot=pilot):
        raise PermissionDenied(f"cached file {sha256} was uploaded by someone else: only its uploaders, "
                               f"admins and pilots may read it")  # fmt: skip
    return path


def cache_key_of(transformation) -> str | None:
    """The cache key a transformation URL points at (`http(s)://<host>/cache/<sha256>[#script]`), else None."""
    text = (transformation or "").strip()
    if not text.startswith(("http://", "https://")):
        return None
    match = URL_PATH.match(urllib.parse.urlsplit(text).path)
    return match.group(1) if match else None


def check_transformation(user, transformation) -> None:
    """A submission may use a cached file only if it exists and its submitter may read it."""
    sha256 = cache_key_of(transformation)
    if sha256 is None:
        return
    try:
        check_may_read(sha256=sha256, user=user)
    except NotFound:
        raise InvalidInput(f"transformation: no cached file {sha256}; upload it first (POST /api/v1/cache/)") from None
    except PermissionDenied as error:
        raise PermissionDenied(f"transformation: {error.message}") from None


def check_submitted_transformations(*, submitter, jobs) -> None:
    """A job submission check (jobs.services.submission): each job's cached code must be the submitter's to use."""
    for transformation in {job.transformation for job in jobs}:
        check_transformation(submitter, transformation)


def url_for(sha256, base) -> str:
    """The URL of a cached file; `base` is the server's URL as the uploader reached it (CACHE_URL wins)."""
    return f"{settings.PANDA['CACHE_URL'] or base.rstrip('/')}/cache/{sha256}"

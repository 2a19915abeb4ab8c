"""Site movers: how the pilot reads and writes its site's storage.

The storage location (`--storage-dir`) picks the mover: a path or `file://`
URL gets the directory mover, an `http(s)://` URL the HTTP mover (GET to
stage in; PUT with Content-Length to stage out, then HEAD to check what the
storage holds).

Where a file lives is the catalog's deterministic layout,
`<storage>/<md5(lfn)[0:2]>/<md5(lfn)[2:4]>/<lfn>`: the server registers the
pilot's outputs at the `surl` it reports, and its transfer agent puts the
inputs it brings to a site at that same place. Stage-in also looks at the
flat `<storage>/<lfn>`, where older tools (and hand-made test setups) put
files, and at the same layout under `<storage>/userarea/`, where the transfer
agent puts users' copies at a site with a user storage area (docs/ddm-policy.md).
Stage-out writes only to the deterministic place.

Movers check a cancel event between chunks (see pilot/deadline.py) and never
give a partial file its final name.
"""

import hashlib
import http.client
import logging
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from pilot import __version__
from pilot.files import (
    CHUNK_SIZE,
    Digest,
    FileFacts,
    TransferCancelled,
    copy_with_facts,
    file_facts,
    read_chunks,
    write_chunks,
)

logger = logging.getLogger(__name__)

USER_AGENT = f"pandamon-pilot/{__version__}"
HTTP_SCHEMES = ("http://", "https://")
FILE_SCHEME = "file://"


class StorageError(Exception):
    """The storage refused the transfer or broke it off."""


class NotInStorage(StorageError):
    """No place the mover looked at holds the file."""


class StoredCopyMismatch(StorageError):
    """What the storage holds after a stage-out differs from the local file."""


@dataclass(frozen=True)
class TransferPolicy:
    """How long one file transfer may take, and what may stop it early.

    interrupt: the job's KillSwitch (anything with is_set()); a stop that
    comes while a transfer runs aborts it (see pilot/deadline.py).
    """

    timeout: float = 1800.0
    http_timeout: float = 60.0
    interrupt: object = None


DEFAULT_POLICY = TransferPolicy()


@dataclass(frozen=True)
class Stored:
    facts: FileFacts
    surl: str


def deterministic_path(storage: str, lfn: str) -> str:
    """The catalog's place for `lfn` under `storage` (a path or a URL).

    A copy of client/storage.py: deterministic_pfn and
    datasets/services/replicas.py: deterministic_pfn (the pilot imports
    neither: it runs on worker nodes without the project); the three must
    agree.
    """
    digest = hashlib.md5(lfn.encode(), usedforsecurity=False).hexdigest()
    return f"{storage.rstrip('/')}/{digest[:2]}/{digest[2:4]}/{lfn}"


def flat_path(storage: str, lfn: str) -> str:
    return f"{storage.rstrip('/')}/{lfn}"


# datasets/services/user_areas.py AREA_DIRECTORY: users' copies at a site with a user storage area.
USER_AREA_DIRECTORY = "userarea"


def stage_in_candidates(storage: str, lfn: str) -> list[str]:
    """Where an input may be, most likely first: the deterministic place, the flat one, the user area."""
    user_area = f"{storage.rstrip('/')}/{USER_AREA_DIRECTORY}"
    return [deterministic_path(storage, lfn), flat_path(storage, lfn), deterministic_path(user_area, lfn)]


def is_http(location: str) -> bool:
    return location.startswith(HTTP_SCHEMES)


def normalize_location(location: str) -> str:
    """Make a plain path absolute; URLs stay as they are."""
    if is_http(location) or location.startswith(FILE_SCHEME):
        return location
    return os.path.abspath(location)


def local_directory(location: str | None) -> str | None:
    """The filesystem path of a directory storage location; None for HTTP or none."""
    if not location or is_http(location):
        return None
    if location.startswith(FILE_SCHEME):
        return urllib.parse.unquote(urllib.parse.urlsplit(location).path)
    return location


def mover_for(location: str, http_timeout: float = 60.0) -> "DirectoryMover | HttpMover":
    if is_http(location):
        return HttpMover(location, http_timeout)
    return DirectoryMover(local_directory(location))


class DirectoryMover:
    """Storage that is a directory the worker node can see (local disk, NFS, a mounted SE)."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)

    def __str__(self) -> str:
        return self.root

    def fetch(self, lfn: str, destination: str, cancel: threading.Event, with_md5: bool = False) -> FileFacts:
        source = self._find(lfn)
        try:
            facts = copy_with_facts(source, destination, with_md5, cancel)
        except TransferCancelled:
            raise
        except OSError as exc:
            raise StorageError(f"copying {source} failed: {exc}") from exc
        logger.info("read %s from %s", lfn, source)
        return facts

    def _find(self, lfn: str) -> str:
        candidates = stage_in_candidates(self.root, lfn)
        for candidate in candidates:
            if os.path.isfile(candidate):
                return candidate
        raise NotInStorage(f"input file {lfn} not found in storage: {' nor '.join(candidates)}")

    def store(self, path: str, lfn: str, cancel: threading.Event) -> Stored:
        destination = deterministic_path(self.root, lfn)
        if os.path.exists(destination):
            logger.warning("overwriting %s already in storage", destination)
        try:
            os.makedirs(os.path.dirname(destination), exist_ok=True)
            facts = copy_with_facts(path, destination, cancel=cancel)
            stored = file_facts(destination)
        except TransferCancelled:
            raise
        except OSError as exc:
            raise StorageError(f"copying {lfn} to {destination} failed: {exc}") from exc
        if stored != facts:
            raise StoredCopyMismatch(
                f"{lfn} in storage has adler32 {stored.adler32} size {stored.size}, "
                f"expected {facts.adler32} size {facts.size}"
            )
        return Stored(facts, FILE_SCHEME + destination)


class HttpMover:
    """Storage behind an HTTP(S) server that answers GET, PUT and HEAD on the same paths.

    The pilot's credential is never sent: the storage is another server.
    """

    def __init__(self, base_url: str, timeout: float = 60.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def __str__(self) -> str:
        return self.base_url

    def fetch(self, lfn: str, destination: str, cancel: threading.Event, with_md5: bool = False) -> FileFacts:
        candidates = stage_in_candidates(self.base_url, lfn)
        for url in candidates:
            response = self._get(url)
            if response is None:
                continue
            with response:
                facts = write_chunks(_body_chunks(response, url), destination, with_md5, cancel)
            logger.info("read %s from %s", lfn, url)
            return facts
        raise NotInStorage(f"input file {lfn} not found in storage: {' nor '.join(candidates)}")

    def _get(self, url: str):
        """The open response, or None for a 404."""
        request = urllib.request.Request(_quoted(url), headers={"User-Agent": USER_AGENT})
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)  # noqa: S310 - http(s) only
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 404:
                return None
            raise StorageError(f"GET {url}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise StorageError(f"GET {url} failed: {_reason(exc)}") from exc

    def store(self, path: str, lfn: str, cancel: threading.Event) -> Stored:
        surl = deterministic_path(self.base_url, lfn)
        size = os.path.getsize(path)
        with open(path, "rb") as source:
            body = _CancellableReader(source, cancel)
            self._put(surl, body, size)
        facts = body.facts()
        if facts.size != size:
            raise StorageError(f"{path} changed while it was being sent ({size} bytes, then {facts.size})")
        self._verify(surl, facts)
        return Stored(facts, surl)

    def _put(self, url: str, body, size: int) -> None:
        headers = {
            "Content-Length": str(size),
            "Content-Type": "application/octet-stream",
            "User-Agent": USER_AGENT,
        }
        request = urllib.request.Request(_quoted(url), data=body, method="PUT", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout):  # noqa: S310 - http(s) only
                pass
        except urllib.error.HTTPError as exc:
            exc.close()
            raise StorageError(f"PUT {url}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise StorageError(f"PUT {url} failed: {_reason(exc)}") from exc

    def _verify(self, url: str, facts: FileFacts) -> None:
        """HEAD the stored file: its size, and its adler32 if the storage tells one (RFC 3230 Digest)."""
        request = urllib.request.Request(
            _quoted(url), method="HEAD", headers={"Want-Digest": "adler32", "User-Agent": USER_AGENT}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                size = response.headers.get("Content-Length")
                adler32 = digest_adler32(response.headers.get("Digest", ""))
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code in (405, 501):  # a storage without HEAD: trust its 2xx to the PUT
                logger.warning("%s does not answer HEAD (HTTP %d): upload not verified", url, exc.code)
                return
            raise StorageError(f"HEAD {url} after the upload: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise StorageError(f"HEAD {url} after the upload failed: {_reason(exc)}") from exc
        if (size is not None and size != str(facts.size)) or (adler32 and adler32 != facts.adler32):
            raise StoredCopyMismatch(
                f"{url} in storage has adler32 {adler32 or '?'} size {size}, expected {facts.adler32} size {facts.size}"
            )


class _CancellableReader:
    """The PUT body: reads the local file, checksums it, stops when cancelled."""

    def __init__(self, stream, cancel: threading.Event):
        self._stream = stream
        self._cancel = cancel
        self._digest = Digest()

    def read(self, size: int = CHUNK_SIZE) -> bytes:
        if self._cancel.is_set():
            raise TransferCancelled("upload cancelled")
        chunk = self._stream.read(size if size and size > 0 else CHUNK_SIZE)
        self._digest.update(chunk)
        return chunk

    def facts(self) -> FileFacts:
        return FileFacts(self._digest.size, self._digest.adler32)


def _body_chunks(response, url: str):
    """The response body in chunks; a body shorter than promised is an error, not a short file."""
    received = 0
    try:
        for chunk in read_chunks(response):
            received += len(chunk)
            yield chunk
    except (OSError, http.client.HTTPException) as exc:
        raise StorageError(f"reading {url} broke off after {received} bytes: {_reason(exc)}") from exc
    promised = response.headers.get("Content-Length")
    if promised and promised.isdigit() and int(promised) != received:
        raise StorageError(f"reading {url} broke off after {received} of {promised} bytes")


def digest_adler32(header: str) -> str:
    """adler32 from an RFC 3230 `Digest: adler32=0a1b2c3d, md5=...` header ('' if absent)."""
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name.lower() == "adler32" and value:
            return value.strip().lower().zfill(8)
    return ""


def _quoted(url: str) -> str:
    """Percent-encode the path (an LFN may hold characters a request line cannot)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=urllib.parse.quote(parts.path)))


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc) or type(exc).__name__

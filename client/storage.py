"""Site storage: a directory (a path or `file://` URL) or an HTTP(S) server.

A file's place is deterministic, `<endpoint>/<md5(lfn)[0:2]>/<md5(lfn)[2:4]>/<lfn>`,
as the catalog computes it. Downloads go to a `.part` file and continue where
an earlier try stopped (a seek for a directory, `Range: bytes=N-` for HTTP).
Uploads never leave a half-written file under the final name: a directory
copy goes through a temporary file and a rename; HTTP storage gets one PUT.

The catalog's token is never sent to storage: it is another server.
"""

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

from client import __version__
from client.checksums import CHUNK_SIZE, Digest, FileFacts, file_facts, normalize_adler32
from client.errors import StorageError

USER_AGENT = f"dq2/{__version__}"
TIMEOUT = 60.0
CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(\d+|\*)")
# Progress callbacks get the number of bytes just moved.
Progress = Callable[[int], None]


def deterministic_pfn(endpoint: str, lfn: str) -> str:
    digest = hashlib.md5(lfn.encode(), usedforsecurity=False).hexdigest()
    return f"{endpoint.rstrip('/')}/{digest[:2]}/{digest[2:4]}/{lfn}"


def is_http(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def local_path(location: str) -> Path:
    """The filesystem path of a directory PFN (a plain path or a file:// URL)."""
    if location.startswith("file://"):
        return Path(urllib.parse.unquote(urllib.parse.urlsplit(location).path))
    return Path(location)


def _no_progress(_: int) -> None:
    pass


# -- download ----------------------------------------------------------------


def fetch(pfn: str, part: Path, expected_size: int, progress: Progress = _no_progress) -> Digest:
    """Bring `pfn` into `part`, continuing a partial file; the digest covers the whole part file.

    The caller compares the digest with the catalog's size and adler32.
    """
    offset = part.stat().st_size if part.exists() else 0
    if offset > expected_size:
        offset = 0  # longer than the file can be: not a prefix of it
    if part.exists() and offset == expected_size:
        digest = Digest()
        digest.update_from_file(part)  # complete from an earlier try: only verify it
        progress(offset)
        return digest
    stream, start = _open_source(pfn, offset)
    with stream:
        digest = Digest()
        if start:
            digest.update_from_file(part, limit=start)
            progress(start)
        with open(part, "r+b" if part.exists() else "wb") as out:
            out.truncate(start)  # the source may have ignored the offset: start again there
            out.seek(start)
            received = _copy(stream, out, digest, progress, pfn)
    promised = _content_length(stream)
    if promised is not None and received < promised:
        # http.client hands a connection closed early over as a short body, not an error.
        raise StorageError(f"reading {pfn} broke off after {received} of {promised} bytes", transient=True)
    return digest


def _copy(stream, out, digest: Digest, progress: Progress, pfn: str) -> int:
    """Copy to the end of the stream; returns the number of bytes copied."""
    received = 0
    while True:
        try:
            chunk = stream.read(CHUNK_SIZE)
        except (OSError, http.client.HTTPException) as exc:
            # What arrived is kept in the part file: the next try continues from there.
            raise StorageError(f"reading {pfn} broke off: {_reason(exc)}", transient=True) from exc
        if not chunk:
            return received
        received += len(chunk)
        out.write(chunk)  # a local write error (disk full) is not the replica's fault: it propagates
        digest.update(chunk)
        progress(len(chunk))


def _content_length(stream) -> int | None:
    headers = getattr(stream, "headers", None)  # HTTP responses have headers; local files do not
    value = headers.get("Content-Length") if headers is not None else None
    return int(value) if value and value.isdigit() else None


def _open_source(pfn: str, offset: int):
    """(readable stream, offset its data starts at): that is 0 when a server ignores Range."""
    if is_http(pfn):
        return _open_http(pfn, offset)
    path = local_path(pfn)
    try:
        stream = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    except FileNotFoundError:
        raise StorageError(f"{pfn} is missing from storage") from None
    except OSError as exc:
        raise StorageError(f"cannot read {pfn}: {exc.strerror}") from exc
    stream.seek(offset)
    return stream, offset


def _open_http(url: str, offset: int):
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            return _open_http(url, 0)  # the stored file is shorter than our part: start over
        raise _http_storage_error(exc, "GET", url) from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise StorageError(f"cannot reach storage for {url}: {_reason(exc)}", transient=True) from exc
    return response, _range_start(response, offset)


def _range_start(response, offset: int) -> int:
    if response.status != 206:
        return 0
    match = CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
    if not match or int(match.group(1)) != offset:
        response.close()
        raise StorageError(f"storage answered a range we did not ask for: {response.headers.get('Content-Range')}")
    return offset


# -- upload ------------------------------------------------------------------


def store(source: Path, pfn: str, facts: FileFacts, progress: Progress = _no_progress) -> bool:
    """Put a local file at `pfn` and check what storage holds. False: it was there already."""
    if is_http(pfn):
        return _store_http(source, pfn, facts, progress)
    return _store_directory(source, local_path(pfn), facts, progress)


def _store_directory(source: Path, target: Path, facts: FileFacts, progress: Progress) -> bool:
    if _same_file_at(target, facts):
        return False
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(source, "rb") as src, open(temporary, "wb") as out:
            while chunk := src.read(CHUNK_SIZE):
                out.write(chunk)
                progress(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        # Readers see the old file or the whole new one, never a partial copy.
        os.replace(temporary, target)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from exc
    _verify_directory_copy(target, facts)
    return True


def _same_file_at(target: Path, facts: FileFacts) -> bool:
    if not target.is_file() or target.stat().st_size != facts.size:
        return False
    return file_facts(target).adler32 == facts.adler32


def _verify_directory_copy(target: Path, facts: FileFacts) -> None:
    stored = file_facts(target)
    if (stored.size, stored.adler32) != (facts.size, facts.adler32):
        raise StorageError(
            f"{target} in storage has {stored.size} bytes, ad:{stored.adler32}; "
            f"expected {facts.size} bytes, ad:{facts.adler32} (did the local file change?)"
        )


def _store_http(source: Path, url: str, facts: FileFacts, progress: Progress) -> bool:
    if _http_has(url, facts):
        return False
    with open(source, "rb") as body:
        request = urllib.request.Request(
            url,
            data=_CountingReader(body, progress),
            method="PUT",
            headers={"Content-Length": str(facts.size), "Content-Type": "application/octet-stream",
                     "User-Agent": USER_AGENT},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT):
                pass
        except urllib.error.HTTPError as exc:
            raise _http_storage_error(exc, "PUT", url) from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise StorageError(f"cannot reach storage for {url}: {_reason(exc)}", transient=True) from exc
    if not _http_has(url, facts, after_put=True):
        raise StorageError(f"{url}: storage does not hold the {facts.size} bytes just sent")
    return True


def _http_has(url: str, facts: FileFacts, after_put: bool = False) -> bool:
    """Whether storage holds this file: its size, and its adler32 when it tells one (`Digest`)."""
    request = urllib.request.Request(url, method="HEAD", headers={"Want-Digest": "adler32", "User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            size = response.headers.get("Content-Length")
            adler32 = _digest_adler32(response.headers.get("Digest", ""))
    except urllib.error.HTTPError as exc:
        if exc.code == 404 and not after_put:
            return False
        raise _http_storage_error(exc, "HEAD", url) from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise StorageError(f"cannot reach storage for {url}: {_reason(exc)}", transient=True) from exc
    if adler32 and after_put and adler32 != facts.adler32:
        raise StorageError(f"{url}: storage reports ad:{adler32} after the upload, expected ad:{facts.adler32}")
    return size == str(facts.size) and (not adler32 or adler32 == facts.adler32)


def _digest_adler32(header: str) -> str:
    """adler32 from an RFC 3230 `Digest: adler32=0a1b2c3d, md5=...` header ('' if absent)."""
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name.lower() == "adler32":
            return normalize_adler32(value)
    return ""


class _CountingReader:
    """A file object urllib can send that reports progress as it is read."""

    def __init__(self, stream, progress: Progress):
        self._stream = stream
        self._progress = progress

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self._progress(len(chunk))
        return chunk


def _http_storage_error(exc: urllib.error.HTTPError, method: str, url: str) -> StorageError:
    if exc.code == 404:
        return StorageError(f"{url} is missing from storage (HTTP 404)")
    return StorageError(f"storage answered HTTP {exc.code} {exc.reason} to {method} {url}", transient=exc.code >= 500)


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None) or exc
    return str(reason) or type(reason).__name__

"""How the transfer tools move bytes (datasets/transfer_tools.py): reading a source while checking it
against the catalog's size and adler32, writing a directory destination under a temporary name renamed
into place only when the bytes match, and HTTP GET/PUT/HEAD/DELETE with their checks.

Also what every tool and its caller share: the FileTransfer to do, and the exceptions a tool raises.
"""

import http.client
import os
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from client.checksums import CHUNK_SIZE, Digest, FileFacts, file_facts, normalize_adler32
from client.storage import is_http, local_path

USER_AGENT = "pandamon-transfer-agent"
# Room for the dot, the random part and ".part" within a 255-byte file name.
_MAX_TEMPORARY_STEM = 200


@dataclass(frozen=True)
class FileTransfer:
    lfn: str
    fsize: int  # catalog size in bytes
    adler32: str  # catalog adler32, 8 lowercase hex chars
    # The SAME source replica reachable in several ways, in preference order:
    # a local path / file:// URL and/or an http(s) URL (a "door").
    sources: tuple[str, ...]
    destination: str  # path, file:// URL or http(s) URL where the file must end up


# -- what tools raise ----------------------------------------------------------


class ToolFailure(Exception):
    """This tool could not do it (unreachable, refused, I/O error): try the next tool.

    http_status: the HTTP status storage answered with, when that was the failure.
    """

    def __init__(self, message: str, http_status: int | None = None):
        super().__init__(message)
        self.http_status = http_status


class SourceMismatch(Exception):
    """The source's bytes are not the catalog's file: no tool can fix that."""


class Cancelled(Exception):
    """The caller stopped waiting for this tool; nobody reads the result."""


# -- location helpers ----------------------------------------------------------


def is_local(location: str) -> bool:
    """A plain path or a file:// URL (anything else with a scheme belongs to some other tool)."""
    return bool(location) and (location.startswith("file://") or "://" not in location)


def first_source(sources: Sequence[str], accept: Callable[[str], bool]) -> str | None:
    return next((source for source in sources if accept(source)), None)


def readable(location: str) -> bool:
    return is_local(location) or is_http(location)


# -- reading a source ----------------------------------------------------------


class VerifyingReader:
    """A source stream that checks, as it is read, that its bytes are the catalog's file.

    Works both for our own copy loop and as a request body urllib reads. The size is
    checked as bytes flow (a copy stops as soon as the source is longer or shorter
    than the catalog says); the adler32 once they are all through, by `verify()`,
    which the caller runs before it lets the copy stand. `promised` is the
    Content-Length an HTTP source announced: fewer bytes than promised is a broken
    connection, not a bad replica.
    """

    def __init__(
        self, stream, transfer: FileTransfer, cancel: threading.Event, location: str, promised: int | None = None
    ):
        self._stream = stream
        # An HTTP response's read(n) waits for all n bytes; read1 returns what one receive brought,
        # so a slow server cannot keep the tool from noticing that it was cancelled.
        self._read = stream.read1 if is_http(location) else stream.read
        self._transfer = transfer
        self._cancel = cancel
        self._location = location
        self._promised = promised
        self.digest = Digest()

    def read(self, size: int = -1) -> bytes:
        # urllib asks for 8 KiB blocks when sending a body; 1 MiB costs far fewer calls.
        if self._cancel.is_set():
            raise Cancelled()
        chunk = self._read(CHUNK_SIZE)
        if not chunk:
            self._check_size()
            return b""
        self.digest.update(chunk)
        if self.digest.size > self._transfer.fsize:
            raise SourceMismatch(f"{self._location} has more than the catalog's {self._transfer.fsize} bytes")
        return chunk

    def _check_size(self) -> None:
        """At the end of the source. Raising here also aborts a PUT that would otherwise wait for more bytes."""
        size, expected = self.digest.size, self._transfer.fsize
        if self._promised is not None and size < self._promised:
            # http.client hands a connection closed early over as a short body, not an error.
            raise ToolFailure(f"reading {self._location} broke off after {size} of {self._promised} bytes")
        if size != expected:
            raise SourceMismatch(f"{self._location} has {size} bytes, the catalog says {expected}")

    def verify(self) -> None:
        """Once everything was read: the bytes are the catalog's file, or SourceMismatch."""
        self._check_size()  # also catches a caller that stopped reading early
        wanted = normalize_adler32(self._transfer.adler32)
        if self.digest.adler32 != wanted:
            raise SourceMismatch(f"{self._location} has adler32 {self.digest.adler32}, the catalog says {wanted}")

    def facts(self) -> FileFacts:
        return FileFacts(self.digest.size, self.digest.adler32)

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> "VerifyingReader":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def open_local(location: str, transfer: FileTransfer, cancel: threading.Event) -> VerifyingReader:
    try:
        stream = open(local_path(location), "rb")  # noqa: SIM115 - the reader closes it
    except FileNotFoundError:
        raise ToolFailure(f"source file not found: {location}") from None
    # Tell a wrong size before copying (or sending) a byte of it.
    size = os.fstat(stream.fileno()).st_size
    if size != transfer.fsize:
        stream.close()
        raise SourceMismatch(f"{location} has {size} bytes, the catalog says {transfer.fsize}")
    return VerifyingReader(stream, transfer, cancel, location)


def open_http(url: str, transfer: FileTransfer, cancel: threading.Event, timeout: float) -> VerifyingReader:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    response = _urlopen(request, timeout)
    length = response.headers.get("Content-Length")
    promised = int(length) if length and length.isdigit() else None
    if promised is not None and promised != transfer.fsize:
        response.close()
        raise SourceMismatch(f"{url} has {promised} bytes, the catalog says {transfer.fsize}")
    return VerifyingReader(response, transfer, cancel, url, promised)


def _urlopen(request: urllib.request.Request, timeout: float):
    """urlopen with the tool's socket timeout; HTTP and network errors become ToolFailure."""
    what = f"{request.get_method()} {request.full_url}"
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 404 and request.get_method() == "GET":
            raise ToolFailure(f"source file not found: {request.full_url} (HTTP 404)", exc.code) from None
        raise ToolFailure(f"{what}: HTTP {exc.code} {exc.reason}", exc.code) from None
    except urllib.error.URLError as exc:
        raise ToolFailure(f"{what}: {one_line(exc.reason) if exc.reason else exc}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise ToolFailure(f"{what}: {describe(exc)}") from None


# -- writing a local destination -----------------------------------------------


def copy_to_directory(
    open_source: Callable[[], VerifyingReader], transfer: FileTransfer, cancel: threading.Event
) -> FileFacts:
    target = local_path(transfer.destination)
    if _holds(target, transfer):
        # Rucio's rule: a destination that already has the right bytes is a success.
        return _catalog_facts(transfer)
    with open_source() as reader:
        _write_verified(reader, target, cancel)
    return reader.facts()


def _holds(target: Path, transfer: FileTransfer) -> bool:
    try:
        if target.stat().st_size != transfer.fsize:
            return False
    except OSError:  # missing, or not reachable: copy (and fail there if need be)
        return False
    return file_facts(target).adler32 == normalize_adler32(transfer.adler32)


def _write_verified(reader: VerifyingReader, target: Path, cancel: threading.Event) -> None:
    """Copy into a temporary file next to `target`; rename it into place once verified."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name[:_MAX_TEMPORARY_STEM]}.{uuid.uuid4().hex[:8]}.part")
    try:
        with open(temporary, "wb") as out:
            while chunk := reader.read(CHUNK_SIZE):
                out.write(chunk)
        reader.verify()  # wrong bytes never get the real name
        if cancel.is_set():
            raise Cancelled()  # the caller moved on to another tool: leave the destination to it
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _catalog_facts(transfer: FileTransfer) -> FileFacts:
    """What a verified destination holds: the catalog's size and adler32."""
    return FileFacts(transfer.fsize, normalize_adler32(transfer.adler32))


# -- writing an HTTP destination -----------------------------------------------


def upload(open_source: Callable[[], VerifyingReader], url: str, transfer: FileTransfer, timeout: float) -> FileFacts:
    if _http_holds(url, transfer, timeout):
        return _catalog_facts(transfer)
    with open_source() as reader:
        try:
            _put(url, reader, transfer.fsize, timeout)
            # After the PUT's answer, so that our DELETE cannot overtake the storing of the bytes.
            reader.verify()
        except SourceMismatch:
            # Wrong bytes may have been stored, and HTTP has no rename to hold them back: delete.
            _delete_quietly(url, timeout)
            raise
    _check_stored(url, transfer, timeout)
    return reader.facts()


def _put(url: str, reader: VerifyingReader, size: int, timeout: float) -> None:
    headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream", "User-Agent": USER_AGENT}
    request = urllib.request.Request(url, data=reader, method="PUT", headers=headers)
    # The reader checks the size as urllib sends; it raises (aborting the request) when it is wrong.
    with _urlopen(request, timeout):
        pass


def _http_holds(url: str, transfer: FileTransfer, timeout: float) -> bool:
    """Whether storage already has this file, by size and a `Digest: adler32=` it vouches for."""
    stat = _http_stat(url, timeout)
    return stat is not None and stat == (transfer.fsize, normalize_adler32(transfer.adler32))


def _check_stored(url: str, transfer: FileTransfer, timeout: float) -> None:
    """After a PUT: a storage that reports a different size or adler32 lost bytes on the way."""
    stat = _http_stat(url, timeout)
    if stat is None:
        return  # HEAD unsupported or unanswered: the PUT's 2xx is all we have
    size, adler32 = stat
    expected = normalize_adler32(transfer.adler32)
    if (size is not None and size != transfer.fsize) or (adler32 and adler32 != expected):
        _delete_quietly(url, timeout)
        held = f"{'?' if size is None else size} bytes, ad:{adler32 or '?'}"
        raise ToolFailure(f"{url} holds {held} after the PUT; expected {transfer.fsize} bytes, ad:{expected}")


def _http_stat(url: str, timeout: float) -> tuple[int | None, str] | None:
    """(size, adler32 or '') from a HEAD; None when storage has no answer for this URL (404, 405 ...)."""
    request = urllib.request.Request(url, method="HEAD", headers={"Want-Digest": "adler32", "User-Agent": USER_AGENT})
    try:
        with _urlopen(request, timeout) as response:
            length = response.headers.get("Content-Length")
            digest = response.headers.get("Digest", "")
    except ToolFailure as exc:
        if exc.http_status is not None:
            return None
        raise
    return (int(length) if length and length.isdigit() else None), _adler32_of_digest_header(digest)


def _adler32_of_digest_header(header: str) -> str:
    """adler32 from an RFC 3230 `Digest: adler32=0a1b2c3d, md5=...` header ('' if absent)."""
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name.lower() == "adler32":
            return normalize_adler32(value)
    return ""


def _delete_quietly(url: str, timeout: float) -> None:
    """Best effort: the mismatch is what gets reported, not a failed clean-up."""
    try:
        with _urlopen(urllib.request.Request(url, method="DELETE", headers={"User-Agent": USER_AGENT}), timeout):
            pass
    except ToolFailure:
        pass


def describe(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return one_line(exc) or type(exc).__name__


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())

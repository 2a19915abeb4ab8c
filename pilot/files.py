"""File helpers shared by stage-in and stage-out: checksums, safe copies."""

import hashlib
import os
import threading
import uuid
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

CHUNK_SIZE = 1024 * 1024


def format_adler32(value: int) -> str:
    """PanDA/Rucio spelling of an adler32: 8 lowercase hex digits."""
    return f"{value & 0xFFFFFFFF:08x}"


class Digest:
    """Running adler32 (always) and md5 (on request) over streamed chunks."""

    def __init__(self, with_md5: bool = False):
        self._adler = 1  # adler32's defined starting value
        self._md5 = hashlib.md5(usedforsecurity=False) if with_md5 else None
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._adler = zlib.adler32(chunk, self._adler)
        if self._md5 is not None:
            self._md5.update(chunk)
        self.size += len(chunk)

    @property
    def adler32(self) -> str:
        return format_adler32(self._adler)

    @property
    def md5(self) -> str | None:
        return self._md5.hexdigest() if self._md5 is not None else None


@dataclass(frozen=True)
class FileFacts:
    size: int
    adler32: str
    md5: str | None = None


def file_facts(path: str, with_md5: bool = False) -> FileFacts:
    digest = Digest(with_md5)
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK_SIZE):
            digest.update(chunk)
    return FileFacts(digest.size, digest.adler32, digest.md5)


def adler32_of_file(path: str) -> str:
    return file_facts(path).adler32


class TransferCancelled(Exception):
    """The transfer's cancel event was set (its deadline passed, or the job was stopped)."""


def read_chunks(stream) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK_SIZE):
        yield chunk


def write_chunks(
    chunks: Iterable[bytes], destination_path: str, with_md5: bool = False, cancel: threading.Event | None = None
) -> FileFacts:
    """Write `chunks` to `destination_path`, checksumming them on the way.

    Writes to a temporary name and renames at the end, so a crash (or a
    cancelled transfer) never leaves a half-written file under the real
    name. `cancel` is checked between chunks and before the rename.
    """
    digest = Digest(with_md5)
    partial_path = f"{destination_path}.part-{uuid.uuid4().hex[:8]}"
    try:
        with open(partial_path, "wb") as target:
            for chunk in chunks:
                _check_cancel(cancel)
                digest.update(chunk)
                target.write(chunk)
        _check_cancel(cancel)
        os.replace(partial_path, destination_path)
    except BaseException:
        _remove_quietly(partial_path)
        raise
    return FileFacts(digest.size, digest.adler32, digest.md5)


def copy_with_facts(
    source_path: str, destination_path: str, with_md5: bool = False, cancel: threading.Event | None = None
) -> FileFacts:
    """Copy a file and checksum the bytes on the way, in one pass (see write_chunks)."""
    with open(source_path, "rb") as source:
        return write_chunks(read_chunks(source), destination_path, with_md5, cancel)


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise TransferCancelled("transfer cancelled")


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def parse_checksum(checksum: str | None) -> tuple[str, str] | None:
    """'ad:0a1b2c3d' -> ('adler32', '0a1b2c3d'); 'md5:...' -> ('md5', ...).

    A bare value is guessed from its length, as pilot3 does.
    """
    if not checksum:
        return None
    kind, _, value = checksum.strip().lower().rpartition(":")
    if kind in ("ad", "adler32") or (not kind and len(value) == 8):
        return "adler32", value.zfill(8)
    if kind == "md5" or (not kind and len(value) == 32):
        return "md5", value
    return None


def is_safe_lfn(lfn: str) -> bool:
    """An LFN must name a file directly inside a directory.

    LFNs come from the server and are joined onto local paths; one with a
    slash or '..' could read or overwrite files outside the work directory.
    """
    return bool(lfn) and lfn not in (".", "..") and "/" not in lfn and "\0" not in lfn

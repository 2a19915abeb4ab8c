"""Checksums as the catalog spells them: adler32 as 8 lowercase hex digits, md5 as hex."""

import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

CHUNK_SIZE = 1024 * 1024


def format_adler32(value: int) -> str:
    return f"{value & 0xFFFFFFFF:08x}"


def normalize_adler32(value: str) -> str:
    """The server and DQ2 users write `ad:0a1b2c3d` or `0a1b2c3d`; compare the bare hex."""
    return str(value or "").strip().lower().removeprefix("ad:")


class Digest:
    """Running size, adler32 and (on request) md5 over streamed chunks."""

    def __init__(self, with_md5: bool = False):
        self._adler = 1  # adler32's defined starting value
        self._md5 = hashlib.md5(usedforsecurity=False) if with_md5 else None
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._adler = zlib.adler32(chunk, self._adler)
        if self._md5 is not None:
            self._md5.update(chunk)
        self.size += len(chunk)

    def update_from_file(self, path: Path, limit: int | None = None) -> None:
        """Feed the first `limit` bytes of a file (all of it when None)."""
        remaining = limit
        with open(path, "rb") as source:
            while remaining is None or remaining > 0:
                chunk = source.read(CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining))
                if not chunk:
                    break
                self.update(chunk)
                if remaining is not None:
                    remaining -= len(chunk)

    @property
    def adler32(self) -> str:
        return format_adler32(self._adler)

    @property
    def md5(self) -> str:
        return self._md5.hexdigest() if self._md5 is not None else ""


@dataclass(frozen=True)
class FileFacts:
    size: int
    adler32: str
    md5: str = ""


def file_facts(path: Path, with_md5: bool = False) -> FileFacts:
    digest = Digest(with_md5)
    digest.update_from_file(path)
    return FileFacts(digest.size, digest.adler32, digest.md5)


def adler32_of_bytes(data: bytes) -> str:
    return format_adler32(zlib.adler32(data))

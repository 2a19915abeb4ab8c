"""Checksums as the catalog spells them: adler32 as 8 lowercase hex digits, md5 as hex."""

import zlib
from dataclasses import dataclass
from pathlib import Path

# The pilot is standard library only and ships in the same distribution: one adler32 for both.
from pilot.files import CHUNK_SIZE, format_adler32
from pilot.files import Digest as PilotDigest


def normalize_adler32(value: str) -> str:
    """The server and DQ2 users write `ad:0a1b2c3d` or `0a1b2c3d`; compare the bare hex."""
    return str(value or "").strip().lower().removeprefix("ad:")


class Digest(PilotDigest):
    """The pilot's running size/adler32/md5 digest, plus feeding it a file's first bytes (to resume)."""

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
    def md5(self) -> str:
        return super().md5 or ""  # the catalog's spelling of "no md5"


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

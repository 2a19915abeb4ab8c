"""dq2 get: download a dataset's files from the sites holding them, verified and resumable.

The file list is read page by page (not as one stream) because the downloads
between two pages can take hours and a stream would hold a server worker and
a database cursor open all that time; each page's replicas are looked up in
one bulk call.
"""

import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from client.api import Catalog, quote_name
from client.checksums import file_facts, normalize_adler32
from client.errors import StorageError, TransferError
from client.names import is_valid_lfn
from client.progress import Reporter, human_size
from client.storage import deterministic_pfn, fetch

PAGE_SIZE = 1000
USABLE_STATES = {"", "available"}  # a replica still being copied, or declared bad, is not read


@dataclass(frozen=True)
class Wanted:
    """One catalog file to bring home."""

    lfn: str
    size: int
    adler32: str

    @classmethod
    def from_row(cls, row: dict) -> "Wanted":
        return cls(row["lfn"], int(row["fsize"]), normalize_adler32(row["adler32"]))


@dataclass
class Summary:
    downloaded: int = 0
    present: int = 0
    failed: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.downloaded + self.present + len(self.failed)


def get_dataset(
    catalog: Catalog,
    dataset: str,
    destdir: Path,
    site: str | None = None,
    limit: int | None = None,
    version: int | None = None,
    reporter: Reporter | None = None,
) -> Summary:
    """Download (up to `limit`) files of a dataset version into destdir/dataset/."""
    reporter = reporter or Reporter()
    target = destdir / dataset
    summary = Summary()
    page = min(limit or PAGE_SIZE, PAGE_SIZE)
    rows = catalog.pages(f"/api/v1/datasets/{quote_name(dataset)}/files/", {"version": version, "limit": page})
    for batch in _batches(itertools.islice(rows, limit), PAGE_SIZE):
        wanted = [Wanted.from_row(row) for row in batch]
        replicas = lookup_replicas(catalog, [w.lfn for w in wanted])
        for file in wanted:
            sources = order_replicas(file.lfn, replicas.get(file.lfn, []), site)
            ok = get_file(file, sources, target, reporter)
            _count(summary, file, ok)
    return summary


def lookup_replicas(catalog: Catalog, lfns: list[str]) -> dict[str, list[dict]]:
    answer = catalog.post("/api/v1/replicas/lookup/", {"lfns": lfns}, read_only=True)
    return answer.get("replicas") or {}


def order_replicas(lfn: str, replicas: list[dict], site: str | None) -> list[tuple[str, str]]:
    """(site, pfn) to try in turn: the chosen site first, then the others in the catalog's order."""
    usable = []
    for replica in replicas:
        if str(replica.get("state") or "").lower() not in USABLE_STATES:
            continue
        pfn = replica.get("pfn") or ""
        if not pfn and replica.get("storage_endpoint"):
            pfn = deterministic_pfn(replica["storage_endpoint"], lfn)
        if pfn:
            usable.append((str(replica.get("site", "?")), pfn))
    return sorted(usable, key=lambda item: item[0] != site)  # stable: keeps the catalog's order otherwise


def get_file(file: Wanted, sources: list[tuple[str, str]], target: Path, reporter: Reporter) -> bool | None:
    """Bring one file to target/lfn. True: downloaded; None: already there; False: failed."""
    progress = reporter.start(file.lfn, file.size)
    if not is_valid_lfn(file.lfn):
        # The name becomes a local path: never let it climb out of the target directory.
        progress.finish("FAILED: not a safe file name")
        return False
    destination = target / file.lfn
    if _already_there(destination, file):
        progress.finish("already present, checksum ok")
        return None
    if not sources:
        progress.finish("FAILED: no available replica")
        return False
    target.mkdir(parents=True, exist_ok=True)
    part = destination.with_name(file.lfn + ".part")
    problems = []
    for site, pfn in sources:
        problem = _try_source(file, pfn, part, progress)
        if problem is None:
            os.replace(part, destination)
            progress.finish(f"downloaded {human_size(file.size)} from {site} ({progress.rate()})")
            return True
        problems.append(f"{site}: {problem}")
    progress.finish("FAILED: " + "; ".join(problems))
    return False


def _try_source(file: Wanted, pfn: str, part: Path, progress) -> str | None:
    """Download from one place, a second time if the first try broke off or a resumed part was bad.

    Returns None on success, else what went wrong.
    """
    problem = None
    for _ in range(2):
        resumed = part.exists() and part.stat().st_size > 0
        progress.restart()
        try:
            digest = fetch(pfn, part, file.size, progress)
        except StorageError as exc:
            problem = str(exc)
            if exc.transient:
                continue  # what arrived stays in the part file: the next try goes on from there
            return problem
        if digest.size == file.size and digest.adler32 == file.adler32:
            return None
        part.unlink()  # never resume from bytes that fail the checksum
        problem = (
            f"checksum mismatch: got {digest.size} bytes, ad:{digest.adler32}; "
            f"the catalog says {file.size} bytes, ad:{file.adler32}"
        )
        if not resumed:
            return problem  # a clean download was wrong: the replica is bad
        # The earlier partial download may have been the bad part: once more from zero.
    return problem


def _already_there(destination: Path, file: Wanted) -> bool:
    if not destination.is_file() or destination.stat().st_size != file.size:
        return False
    return file_facts(destination).adler32 == file.adler32


def _count(summary: Summary, file: Wanted, ok: bool | None) -> None:
    if ok is None:
        summary.present += 1
    elif ok:
        summary.downloaded += 1
    else:
        summary.failed.append(file.lfn)


def _batches(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def failure(summary: Summary) -> TransferError | None:
    """The error naming the files that could not be fetched, if any."""
    if not summary.failed:
        return None
    names = ", ".join(summary.failed[:10]) + (
        f" and {len(summary.failed) - 10} more" if len(summary.failed) > 10 else ""
    )
    return TransferError(f"{len(summary.failed)} of {summary.total} files could not be fetched: {names}")

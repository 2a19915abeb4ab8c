"""dq2 put: a local directory becomes a user dataset stored at a site.

The order is catalog first, storage second, replicas last: the catalog checks
who may write the dataset before a byte is copied, and a file counts as being
at the site only once it is there and verified. A run that stopped half-way
is repaired by running it again: files of the dataset without a replica at
the site are copied then, files already stored are not copied again.
"""

import uuid
from dataclasses import dataclass, field
from pathlib import Path

from client.api import Catalog, quote_name
from client.checksums import FileFacts, file_facts, normalize_adler32
from client.errors import DQ2Error, NotFound, ServerError, StorageError, TransferError, UsageError
from client.names import is_valid_lfn
from client.progress import Reporter, human_size
from client.storage import deterministic_pfn, store

LOOKUP_BATCH = 1000
REGISTER_BATCH = 200  # replicas registered this often, so an interruption loses little


@dataclass(frozen=True)
class LocalFile:
    path: Path
    lfn: str
    facts: FileFacts

    def spec(self) -> dict:
        return {"lfn": self.lfn, "fsize": self.facts.size, "adler32": self.facts.adler32, "md5": self.facts.md5,
                "guid": str(uuid.uuid4())}  # fmt: skip


@dataclass
class PutSummary:
    registered: int = 0
    copied: int = 0
    stored_already: int = 0
    failed: list[str] = field(default_factory=list)
    created: bool = False
    version: int | None = None


def scan(directory: Path) -> list[Path]:
    """The regular files directly in `directory`, by name; each name must be a valid LFN."""
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory")
    paths = sorted(p for p in directory.iterdir() if p.is_file())
    if not paths:
        raise UsageError(f"{directory} holds no files to put")
    bad = [p.name for p in paths if not is_valid_lfn(p.name)]
    if bad:
        raise UsageError(f"file name {bad[0]!r} cannot be an LFN (letters, digits, . _ - + : and no leading dot)")
    return paths


def put_directory(
    catalog: Catalog,
    directory: Path,
    dataset: str,
    site: str,
    new_version: bool = False,
    reporter: Reporter | None = None,
) -> PutSummary:
    reporter = reporter or Reporter()
    paths = scan(directory)
    endpoint = site_endpoint(catalog, site)
    local = [LocalFile(path, path.name, file_facts(path, with_md5=True)) for path in paths]
    summary = PutSummary()
    known = files_in_dataset(catalog, dataset, {f.lfn for f in local})
    _check_same_content(dataset, local, known or {})
    new = [f for f in local if known is None or f.lfn not in known]
    _register(catalog, dataset, new, known is None, new_version, summary)
    stored = _stored_at(catalog, [f.lfn for f in local if known is not None and f.lfn in known], site)
    summary.stored_already = len(stored)
    to_copy = [f for f in local if f.lfn not in stored]
    _copy_and_register(catalog, to_copy, site, endpoint, reporter, summary)
    return summary


def site_endpoint(catalog: Catalog, site: str) -> str:
    try:
        answer = catalog.get(f"/api/v1/sites/{quote_name(site)}/")
    except NotFound:
        raise ServerError(f"no site named {site}", status=404) from None
    endpoint = str(answer.get("storage_endpoint") or "")
    if not endpoint:
        raise DQ2Error(f"site {site} has no storage endpoint to put files at")
    return endpoint


def files_in_dataset(catalog: Catalog, dataset: str, lfns: set[str]) -> dict[str, dict] | None:
    """The dataset's (latest) files among `lfns`, or None if there is no such dataset.

    Streamed and filtered as it comes, so a large dataset is never held whole.
    """
    try:
        catalog.get(f"/api/v1/datasets/{quote_name(dataset)}/")
    except NotFound:
        return None
    rows = catalog.records(f"/api/v1/datasets/{quote_name(dataset)}/files/")
    return {row["lfn"]: row for row in rows if row.get("lfn") in lfns}


def _check_same_content(dataset: str, local: list[LocalFile], known: dict[str, dict]) -> None:
    for file in local:
        row = known.get(file.lfn)
        if row and (int(row["fsize"]), normalize_adler32(row["adler32"])) != (file.facts.size, file.facts.adler32):
            raise DQ2Error(
                f"{file.lfn} is already in {dataset} with {row['fsize']} bytes, ad:{normalize_adler32(row['adler32'])}; "
                f"the local file has {file.facts.size} bytes, ad:{file.facts.adler32} (give it another name)"
            )


def _register(catalog, dataset, new, create, new_version, summary) -> None:
    """Create the dataset with the new files, or register a new version holding them."""
    if not create and not new and not new_version:
        return
    specs = [f.spec() for f in new]
    try:
        answer = _register_call(catalog, dataset, specs, create)
    except ServerError as exc:
        if exc.status != 409 or not specs or not _reuse_known_guids(catalog, specs):
            raise
        # Some files were catalogued before (in another dataset) under their own GUIDs.
        answer = _register_call(catalog, dataset, specs, create)
    summary.registered = len(specs)
    summary.created = create
    summary.version = answer.get("latest_version")


def _register_call(catalog, dataset, specs, create) -> dict:
    if create:
        answer = catalog.post("/api/v1/datasets/", {"datasets": [{"name": dataset, "files": specs}]})
        return (answer.get("datasets") or [{}])[0]
    return catalog.post(f"/api/v1/datasets/{quote_name(dataset)}/versions/", {"files": specs})


def _reuse_known_guids(catalog: Catalog, specs: list[dict]) -> bool:
    """Give files the catalog already knows (same size and checksum) their known GUID; True if any changed."""
    changed = False
    for spec in specs:
        try:
            known = catalog.get(f"/api/v1/files/{quote_name(spec['lfn'])}/")
        except NotFound:
            continue
        same = (known.get("fsize"), normalize_adler32(known.get("adler32", ""))) == (spec["fsize"], spec["adler32"])
        if same and known.get("guid") and known["guid"] != spec["guid"]:
            spec["guid"] = known["guid"]
            changed = True
    return changed


def _stored_at(catalog: Catalog, lfns: list[str], site: str) -> set[str]:
    """Which of these (already catalogued) files have a replica at the site."""
    stored = set()
    for start in range(0, len(lfns), LOOKUP_BATCH):
        batch = lfns[start : start + LOOKUP_BATCH]
        answer = catalog.post("/api/v1/replicas/lookup/", {"lfns": batch}, read_only=True)
        for lfn, replicas in (answer.get("replicas") or {}).items():
            if any(r.get("site") == site for r in replicas):
                stored.add(lfn)
    return stored


def _copy_and_register(catalog, files, site, endpoint, reporter, summary) -> None:
    pending = []
    try:
        for file in files:
            pfn = deterministic_pfn(endpoint, file.lfn)
            if _copy_one(file, pfn, reporter):
                pending.append({"lfn": file.lfn, "pfn": pfn})
                summary.copied += 1
            else:
                summary.failed.append(file.lfn)
            if len(pending) >= REGISTER_BATCH:
                _register_replicas(catalog, site, pending)
    finally:
        # Whatever reached storage is registered, even when a later file stopped the run.
        _register_replicas(catalog, site, pending)


def _copy_one(file: LocalFile, pfn: str, reporter: Reporter) -> bool:
    progress = reporter.start(file.lfn, file.facts.size)
    for attempt in (1, 2):
        progress.restart()
        try:
            copied = store(file.path, pfn, file.facts, progress)
        except StorageError as exc:
            if exc.transient and attempt == 1:
                continue
            progress.finish(f"FAILED: {exc}")
            return False
        outcome = f"copied {human_size(file.facts.size)} to {pfn}" if copied else f"already at {pfn}"
        progress.finish(outcome)
        return True
    return False  # not reached: the second try returns


def _register_replicas(catalog: Catalog, site: str, pending: list[dict]) -> None:
    if pending:
        catalog.post("/api/v1/replicas/", {"site": site, "replicas": list(pending)})
        pending.clear()


def failure(summary: PutSummary) -> TransferError | None:
    if not summary.failed:
        return None
    names = ", ".join(summary.failed[:10]) + (
        f" and {len(summary.failed) - 10} more" if len(summary.failed) > 10 else ""
    )
    return TransferError(f"{len(summary.failed)} files could not be stored: {names}")

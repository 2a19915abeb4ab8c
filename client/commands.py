"""The dq2 subcommands: each takes the catalog and the parsed arguments, prints, returns an exit code."""

import json
import sys
from pathlib import Path

from client import download, upload
from client.api import Catalog, quote_name
from client.checksums import normalize_adler32
from client.errors import UsageError
from client.progress import Reporter, human_size

LIST_PAGE = 1000


def _out(text: str) -> None:
    print(text, file=sys.stdout)


def _files(n: int) -> str:
    return f"{n} file" if n == 1 else f"{n} files"


def _dataset_path(name: str, *rest: str) -> str:
    return "/api/v1/datasets/" + "/".join([quote_name(name), *rest]) + "/"


# -- ls ------------------------------------------------------------------------


def ls(catalog: Catalog, args) -> int:
    if args.files:
        return ls_files(catalog, args.name, args.version)
    if args.replicas:
        return ls_replicas(catalog, args.name)
    return ls_datasets(catalog, args.name, args.long)


def ls_datasets(catalog: Catalog, pattern: str, long: bool) -> int:
    for dataset in catalog.pages("/api/v1/datasets/", {"name": pattern, "limit": LIST_PAGE}):
        if long:
            _out(
                f"{dataset['name']}\t{dataset.get('state', '')}\tv{dataset.get('latest_version', '')}"
                f"\t{dataset.get('n_files', '')} files\t{dataset.get('bytes', '')} bytes"
            )
        else:
            _out(dataset["name"])
    return 0


def ls_files(catalog: Catalog, name: str, version: int | None) -> int:
    """lfn, guid, size, ad:checksum per line, streamed; then the totals."""
    count = size = 0
    for row in catalog.records(_dataset_path(name, "files"), {"version": version}):
        count += 1
        size += int(row.get("fsize") or 0)
        _out(f"{row['lfn']}\t{row.get('guid', '')}\t{row.get('fsize', '')}\tad:{normalize_adler32(row.get('adler32'))}")
    _out(f"total files: {count}, total size: {size} bytes ({human_size(size)})")
    return 0


def ls_replicas(catalog: Catalog, name: str) -> int:
    answer = catalog.get(_dataset_path(name, "replicas"))
    replicas = answer.get("results") or []
    if not replicas:
        _out(f"{name}: no replicas")
    for replica in replicas:
        present, total = replica.get("files_present", 0), replica.get("n_files", 0)
        complete = replica.get("complete")
        if complete is None:
            complete = present >= total
        _out(f"{replica['site']}\t{present}/{total}\t{'complete' if complete else 'incomplete'}")
    return 0


# -- get / put -----------------------------------------------------------------------


def get(catalog: Catalog, args) -> int:
    if args.n is not None and args.n < 1:
        raise UsageError("-n must be at least 1")
    summary = download.get_dataset(
        catalog, args.dataset, Path(args.destdir), site=args.site, limit=args.n, version=args.version,
        reporter=Reporter(),
    )  # fmt: skip
    if summary.total == 0:
        _out(f"{args.dataset}: no files")
        return 0
    where = Path(args.destdir) / args.dataset
    _out(
        f"{summary.downloaded} downloaded, {summary.present} already present, {len(summary.failed)} failed, in {where}"
    )
    error = download.failure(summary)
    if error:
        raise error
    return 0


def put(catalog: Catalog, args) -> int:
    summary = upload.put_directory(
        catalog, Path(args.local_dir), args.dataset, args.site, new_version=args.new_version, reporter=Reporter()
    )
    if summary.created:
        registered = f"registered {args.dataset} with {_files(summary.registered)}"
    elif summary.version is not None:
        registered = f"registered version {summary.version} of {args.dataset} with {summary.registered} new"
    else:
        registered = f"{args.dataset} already holds every file"
    stored = f"{summary.copied} copied to {args.site}" + (
        f", {summary.stored_already} already there" if summary.stored_already else ""
    )
    _out(f"{registered}; {stored}")
    error = upload.failure(summary)
    if error:
        raise error
    return 0


# -- catalog operations --------------------------------------------------------------


def register(catalog: Catalog, args) -> int:
    files = _read_files_json(Path(args.files)) if args.files else []
    answer = catalog.post(
        "/api/v1/datasets/", {"datasets": [{"name": args.dataset, "kind": args.kind, "files": files}]}
    )
    dataset = (answer.get("datasets") or [{}])[0]
    contents = "" if args.kind == "container" else f" with {_files(dataset.get('n_files', len(files)))}"
    _out(f"registered {args.kind} {dataset.get('name', args.dataset)}{contents}")
    return 0


def _read_files_json(path: Path) -> list:
    """A JSON list of files, or {"files": [...]}: each {lfn, fsize, adler32, guid?, md5?, events?}."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path} is not JSON: {exc}") from exc
    if isinstance(data, dict):
        data = data.get("files")
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise UsageError(f'{path} must hold a JSON list of file objects (or {{"files": [...]}})')
    return data


def register_location(catalog: Catalog, args) -> int:
    replica = catalog.post(_dataset_path(args.dataset, "replicas"), {"site": args.site, "complete": args.complete})
    present, total = replica.get("files_present", "?"), replica.get("n_files", "?")
    _out(f"{args.dataset} registered at {args.site} ({present}/{total} files)")
    return 0


def close(catalog: Catalog, args) -> int:
    dataset = catalog.post(_dataset_path(args.dataset, "close"))
    _out(f"{args.dataset} is {dataset.get('state', 'closed')} (version {dataset.get('latest_version', '?')})")
    return 0


def freeze(catalog: Catalog, args) -> int:
    dataset = catalog.post(_dataset_path(args.dataset, "freeze"))
    _out(f"{args.dataset} is {dataset.get('state', 'frozen')}")
    return 0


def erase(catalog: Catalog, args) -> int:
    catalog.delete(_dataset_path(args.dataset))
    _out(f"{args.dataset} erased (purged with its contents after 24 hours)")
    return 0


def container_add(catalog: Catalog, args) -> int:
    path = f"/api/v1/containers/{quote_name(args.container)}/members/"
    answer = catalog.post(path, {"datasets": args.datasets})
    _out(f"{answer.get('added', 0)} added to {args.container}")
    return 0


# -- subscriptions, transfers, callbacks ---------------------------------------------


def _table(headers: list[str], rows: list[list[str]]) -> None:
    """Columns padded to their widest cell (the last one, often long, is not padded)."""
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        _out("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _listing(catalog: Catalog, path: str, params: dict, limit: int, what: str, columns, row) -> int:
    """The first `limit` items of a listing as a table, newest first; says so when there are more."""
    items = []
    for item in catalog.pages(path, {**params, "limit": min(limit + 1, LIST_PAGE)}):
        items.append(item)
        if len(items) > limit:
            break
    if not items:
        _out(f"no {what}")
        return 0
    _table(columns, [row(item) for item in items[:limit]])
    if len(items) > limit:
        _out(f"(the newest {limit} {what} are shown; -n N shows more)")
    return 0


def _subscription_path(pk: int, *rest: str) -> str:
    return "/".join(["/api/v1/subscriptions", str(pk), *rest]) + "/"


def _progress(subscription: dict) -> str:
    progress = subscription.get("progress")
    if not progress:
        return "-"  # a container: its members' replicas tell
    return f"{progress.get('files_present', 0)}/{progress.get('files_wanted', 0)}"


def subscribe(catalog: Catalog, args) -> int:
    body = {"dataset": args.dataset, "site": args.site, "priority": args.priority, "activity": args.activity}
    subscription = catalog.post("/api/v1/subscriptions/", body)
    _out(
        f"subscription {subscription.get('id', '?')}: {args.site} subscribed to {args.dataset} "
        f"(priority {subscription.get('priority', args.priority)}, {subscription.get('state', 'active')})"
    )
    return 0


def subscriptions(catalog: Catalog, args) -> int:
    params = {"dataset": args.dataset, "site": args.site, "state": args.state, "owner": args.owner}

    def row(s):
        return [str(s.get("id", "")), s.get("state", ""), s.get("site", ""), _progress(s),
                str(s.get("priority", "")), s.get("activity", ""), s.get("owner_name", ""),
                s.get("dataset", ""), s.get("reason", "")]  # fmt: skip

    columns = ["ID", "STATE", "SITE", "FILES", "PRIO", "ACTIVITY", "OWNER", "DATASET", "REASON"]
    return _listing(catalog, "/api/v1/subscriptions/", params, args.n, "subscriptions", columns, row)


def unsubscribe(catalog: Catalog, args) -> int:
    catalog.delete(_subscription_path(args.id))
    _out(f"subscription {args.id} deleted (its queued transfers are dropped; replicas stay)")
    return 0


def suspend_subscription(catalog: Catalog, args) -> int:
    subscription = catalog.post(_subscription_path(args.id, "suspend"), {"reason": args.reason or ""})
    _out(f"subscription {args.id} ({_what(subscription)}) is {subscription.get('state', 'suspended')}")
    return 0


def resume_subscription(catalog: Catalog, args) -> int:
    subscription = catalog.post(_subscription_path(args.id, "resume"))
    _out(f"subscription {args.id} ({_what(subscription)}) is {subscription.get('state', 'active')} again")
    return 0


def _what(subscription: dict) -> str:
    return f"{subscription.get('dataset', '?')} at {subscription.get('site', '?')}"


def transfers(catalog: Catalog, args) -> int:
    params = {"destination": args.destination, "source": args.source, "state": args.state,
              "dataset": args.dataset, "lfn": args.lfn}  # fmt: skip

    def row(t):
        return [str(t.get("id", "")), t.get("state", ""), str(t.get("attempts", "")),
                human_size(int(t.get("fsize") or 0)), t.get("source") or "-", t.get("destination", ""),
                t.get("lfn", ""), t.get("error", "")]  # fmt: skip

    columns = ["ID", "STATE", "TRIES", "SIZE", "SOURCE", "DESTINATION", "LFN", "ERROR"]
    return _listing(catalog, "/api/v1/transfers/", params, args.n, "transfers", columns, row)


def callback(catalog: Catalog, args) -> int:
    made = catalog.post("/api/v1/callbacks/", {"dataset": args.dataset, "site": args.site, "url": args.url})
    _out(
        f"callback {made.get('id', '?')} ({made.get('state', 'waiting')}): POST to {args.url} "
        f"once {args.site} holds every file of {args.dataset}"
    )
    return 0


def callbacks(catalog: Catalog, args) -> int:
    params = {"dataset": args.dataset, "site": args.site, "state": args.state}

    def row(c):
        return [str(c.get("id", "")), c.get("state", ""), c.get("site", ""), c.get("dataset", ""),
                c.get("url", ""), c.get("last_error", "")]  # fmt: skip

    columns = ["ID", "STATE", "SITE", "DATASET", "URL", "ERROR"]
    return _listing(catalog, "/api/v1/callbacks/", params, args.n, "callbacks", columns, row)

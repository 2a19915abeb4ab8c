"""Transfer tools: the plugins the transfer agent uses to move ONE file between storage elements.

A site's storage is a directory (a plain path or a `file://` URL) or an HTTP(S)
server (GET to read, PUT to write). A `FileTransfer` names one source replica,
reachable in several ways (a local mount and/or an HTTP door, in preference
order), and one destination.

Plugins. Each tool (`TOOLS`, by name) says whether it can handle a transfer
(`supports`) and picks, on its own, the first source it can read: `local` copies
directory to directory; `http` GETs from an HTTP source into a directory, or PUTs
a local or HTTP source to an HTTP destination. New tools (xrootd, gfal ...) are
one more subclass and one more entry in `TOOLS`; sites choose and order them
with a text setting read by `parse_tool_list`.

Fallback. `transfer_file` tries the configured tools in order. A tool that does
not support the transfer is skipped; one that fails (refused connection, HTTP
error, I/O error, timeout) is recorded and the next one is tried: giving up while
a fallback was left unused would make a storage outage our failure. The one
exception is bytes that do not match the catalog's size or adler32: the source
replica itself is bad, every other tool would read the same bytes, so we stop at
once and say so (`TransferFailed.source_suspect`) for the agent to pick another
replica.

Timeouts. Each tool runs on its own daemon thread and is waited for at most
`timeout` seconds; then a cancel event is set, which the tool checks between
chunks, and the next tool is tried. A hung NFS mount or a server that never
answers therefore costs `timeout` per tool, never the caller's thread. Network
tools also give urllib a socket timeout, so a silent server ends the abandoned
thread too, instead of leaking it.

Temp + rename. A local destination is written to `.<name>.<random>.part` in its
final directory and `os.replace`d into place only once size and adler32 have
been checked. Readers (and the catalog) never see a half-written or wrong file
under the real name, a crashed or cancelled copy leaves at most a dot-file, and
two tools racing after a timeout each write their own temporary file. HTTP has
no rename: a PUT that turns out to have carried wrong bytes is DELETEd.

Standard library only, like the client helpers it reuses (checksums, paths): no
Django, so the agent can call it from any thread pool.
"""

import http.client
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from client.checksums import FileFacts
from client.storage import is_http

from .transfer_io import (
    FileTransfer,
    SourceMismatch,
    ToolFailure,
    VerifyingReader,
    copy_to_directory,
    describe,
    first_source,
    is_local,
    one_line,
    open_http,
    open_local,
    readable,
    upload,
)

DEFAULT_TOOLS = ("local", "http")


@dataclass(frozen=True)
class TransferOutcome:
    tool: str  # name of the tool that succeeded
    size: int
    adler32: str
    seconds: float  # time the successful tool took (failed tries before it not included)
    failures: tuple[tuple[str, str], ...]  # (tool name, error message) of tools tried before and failed


class TransferFailed(Exception):
    """No tool could move the file. str(exc) is a one-line summary.

    failures: (tool name, error message) of every tool tried.
    source_suspect: the source's bytes were wrong (size or adler32 mismatch); another
    replica may be fine, another tool on this one will not be.
    """

    def __init__(self, message: str, failures: tuple[tuple[str, str], ...] = (), source_suspect: bool = False):
        super().__init__(message)
        self.failures = failures
        self.source_suspect = source_suspect


# -- the tools -----------------------------------------------------------------


class TransferTool(ABC):
    """One way of moving a file. Subclasses choose their source and do the copy."""

    name: str

    def supports(self, transfer: FileTransfer) -> bool:
        return self.source_for(transfer) is not None

    @abstractmethod
    def source_for(self, transfer: FileTransfer) -> str | None:
        """The first of `transfer.sources` this tool can read (None: not for this tool)."""

    @abstractmethod
    def copy(self, transfer: FileTransfer, source: str, *, timeout: float, cancel: threading.Event) -> FileFacts:
        """Move the file; returns the size and adler32 of the bytes now at the destination.

        Raises ToolFailure (or OSError / http.client.HTTPException) for a failure of the
        tool, SourceMismatch for wrong source bytes, Cancelled once `cancel` is set.
        """


class LocalTool(TransferTool):
    """Directory to directory: a chunked copy through a temporary file."""

    name = "local"

    def source_for(self, transfer: FileTransfer) -> str | None:
        if not is_local(transfer.destination):
            return None
        return first_source(transfer.sources, is_local)

    def copy(self, transfer: FileTransfer, source: str, *, timeout: float, cancel: threading.Event) -> FileFacts:
        return copy_to_directory(lambda: open_local(source, transfer, cancel), transfer, cancel)


class HttpTool(TransferTool):
    """GET from an HTTP door into a directory, or PUT (from a directory or a door) to HTTP storage."""

    name = "http"

    def source_for(self, transfer: FileTransfer) -> str | None:
        if is_http(transfer.destination):
            return first_source(transfer.sources, readable)
        if is_local(transfer.destination):
            # Directory to directory is the local tool's job.
            return first_source(transfer.sources, is_http)
        return None

    def copy(self, transfer: FileTransfer, source: str, *, timeout: float, cancel: threading.Event) -> FileFacts:
        def open_source() -> "VerifyingReader":
            if is_http(source):
                return open_http(source, transfer, cancel, timeout)
            return open_local(source, transfer, cancel)

        if is_http(transfer.destination):
            return upload(open_source, transfer.destination, transfer, timeout)
        return copy_to_directory(open_source, transfer, cancel)


TOOLS: dict[str, TransferTool] = {tool.name: tool for tool in (LocalTool(), HttpTool())}


def parse_tool_list(text: str) -> tuple[str, ...]:
    """'http, local' -> ('http', 'local'); blank -> DEFAULT_TOOLS; an unknown name -> ValueError."""
    names = tuple(dict.fromkeys(name.strip().lower() for name in (text or "").split(",") if name.strip()))
    for name in names:
        _tool(name)
    return names or DEFAULT_TOOLS


def _tool(name: str) -> TransferTool:
    try:
        return TOOLS[name]
    except KeyError:
        raise ValueError(f"unknown transfer tool {name!r}; known: {', '.join(sorted(TOOLS))}") from None


# -- the fallback loop ---------------------------------------------------------


def transfer_file(transfer: FileTransfer, tool_names: Sequence[str], *, timeout: float) -> TransferOutcome:
    """Move one file with the first tool (in `tool_names` order) that manages it.

    Each tool gets at most `timeout` seconds. Raises TransferFailed when none could.
    """
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    tools = [_tool(name) for name in tool_names]
    failures: list[tuple[str, str]] = []
    tried = False
    for tool in tools:
        source = tool.source_for(transfer)
        if source is None:
            continue
        tried = True
        started = time.monotonic()
        try:
            facts = _run_with_timeout(tool, transfer, source, timeout)
        except SourceMismatch as exc:
            failures.append((tool.name, one_line(exc)))
            raise TransferFailed(
                f"{transfer.lfn}: source replica is bad: {one_line(exc)}", tuple(failures), source_suspect=True
            ) from exc
        except (ToolFailure, OSError, http.client.HTTPException) as exc:
            failures.append((tool.name, describe(exc)))
            continue
        seconds = time.monotonic() - started
        return TransferOutcome(tool.name, facts.size, facts.adler32, seconds, tuple(failures))
    if not tried:
        raise TransferFailed(
            f"{transfer.lfn}: no transfer tool among {', '.join(tool_names) or '(none)'} can copy "
            f"from {', '.join(transfer.sources) or '(no source)'} to {transfer.destination}"
        )
    summary = "; ".join(f"{name}: {message}" for name, message in failures)
    raise TransferFailed(f"{transfer.lfn}: every transfer tool failed: {summary}", tuple(failures))


def _run_with_timeout(tool: TransferTool, transfer: FileTransfer, source: str, timeout: float) -> FileFacts:
    """Run the tool on a daemon thread; give up on it (and tell it to stop) after `timeout` s.

    A thread rather than a pool: a hung tool keeps its thread, and a pool would run out.
    """
    cancel = threading.Event()
    outcome: dict[str, object] = {}

    def work() -> None:
        try:
            outcome["facts"] = tool.copy(transfer, source, timeout=timeout, cancel=cancel)
        except BaseException as exc:  # noqa: BLE001 - handed over to the waiting caller, which raises it
            outcome["error"] = exc

    thread = threading.Thread(target=work, name=f"transfer-{tool.name}-{transfer.lfn}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        # Should the tool finish right now anyway, its file is verified: the next tool
        # finds it in place (or rewrites the same bytes), so the race is harmless.
        cancel.set()
        raise ToolFailure(f"timed out after {timeout:g} s")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["facts"]  # type: ignore[return-value]

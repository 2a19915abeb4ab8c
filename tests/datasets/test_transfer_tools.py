"""The transfer agent's tools, against real files and a real HTTP storage server on loopback.

No database: the tools are plain Python.
"""

import socket
import threading
import time
import zlib
from pathlib import Path

import pytest

from client.storage import deterministic_pfn
from datasets.transfer_tools import (
    DEFAULT_TOOLS,
    TOOLS,
    FileTransfer,
    TransferFailed,
    parse_tool_list,
    transfer_file,
)
from tests.client.conftest import StorageHandler, StorageServer

LFN = "data18.00348885.RAW._lb0001._0001.1"
PAYLOAD = b"event data " * 5000  # several TCP segments, well under one chunk
TIMEOUT = 5.0


def adler32(data: bytes) -> str:
    return f"{zlib.adler32(data):08x}"


class DeletingStorageHandler(StorageHandler):
    """The client tests' storage, plus DELETE (what the tools use to undo a bad PUT)."""

    def do_DELETE(self):
        self.server.log.append(("DELETE", self.path, None))
        self._path().unlink(missing_ok=True)
        self._status(204)


class LossyStorageHandler(DeletingStorageHandler):
    """Answers 201 to a PUT but keeps only half of the body: a storage losing bytes."""

    def do_PUT(self):
        data = self.rfile.read(int(self.headers["Content-Length"]))
        path = self._path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[: len(data) // 2])
        self.server.log.append(("PUT", self.path, None))
        self._status(201)


class TricklingHandler(StorageHandler):
    """Promises the whole file, then sends one byte every 0.1 s: alive, but hopelessly slow."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        try:
            for byte in PAYLOAD:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:  # the client hung up, as it should
            pass


def serve(server):
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    return server


@pytest.fixture
def storage_factory(tmp_path):
    servers = []

    def start(name="http-se", handler=DeletingStorageHandler):
        root = tmp_path / name
        root.mkdir()
        server = StorageServer(root)
        server.RequestHandlerClass = handler
        servers.append(serve(server))
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def storage(storage_factory):
    return storage_factory()


@pytest.fixture
def free_port():
    """A loopback port where nothing listens (bound, then closed again)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def silent_port():
    """A server that accepts connections (the kernel does, into the backlog) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


def put_replica(endpoint: Path, data: bytes = PAYLOAD, lfn: str = LFN) -> Path:
    path = Path(deterministic_pfn(str(endpoint), lfn))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_transfer(sources, destination, data: bytes = PAYLOAD, **overrides) -> FileTransfer:
    fields = {"lfn": LFN, "fsize": len(data), "adler32": adler32(data)} | overrides
    return FileTransfer(sources=tuple(str(s) for s in sources), destination=str(destination), **fields)


def files_under(directory: Path) -> list[Path]:
    """Every file (temporary dot-files included) below a directory."""
    return sorted(p for p in directory.rglob("*") if p.is_file()) if directory.exists() else []


# -- local ---------------------------------------------------------------------


def test_local_copy_creates_the_deterministic_directories_and_verifies(tmp_path):
    source = put_replica(tmp_path / "cern-se")
    destination = Path(deterministic_pfn(str(tmp_path / "bnl-se"), LFN))

    outcome = transfer_file(make_transfer([source], destination), DEFAULT_TOOLS, timeout=TIMEOUT)

    assert (outcome.tool, outcome.size, outcome.adler32, outcome.failures) == (
        "local",
        len(PAYLOAD),
        adler32(PAYLOAD),
        (),
    )
    assert outcome.seconds >= 0
    assert destination.read_bytes() == PAYLOAD
    assert files_under(tmp_path / "bnl-se") == [destination]  # no temporary file left behind


def test_local_copy_understands_file_urls(tmp_path):
    source = put_replica(tmp_path / "cern-se")
    destination = Path(deterministic_pfn(str(tmp_path / "bnl-se"), LFN))

    outcome = transfer_file(make_transfer([source.as_uri()], destination.as_uri()), ["local"], timeout=TIMEOUT)

    assert outcome.tool == "local"
    assert destination.read_bytes() == PAYLOAD


def test_an_existing_matching_destination_is_kept_without_reading_the_source(tmp_path):
    destination = put_replica(tmp_path / "bnl-se")
    before = destination.stat()
    missing_source = tmp_path / "cern-se" / "gone"

    outcome = transfer_file(make_transfer([missing_source], destination), ["local"], timeout=TIMEOUT)

    assert (outcome.tool, outcome.size, outcome.adler32) == ("local", len(PAYLOAD), adler32(PAYLOAD))
    assert destination.stat().st_ino == before.st_ino  # not rewritten
    assert destination.read_bytes() == PAYLOAD


def test_an_existing_different_destination_is_overwritten(tmp_path):
    source = put_replica(tmp_path / "cern-se")
    destination = put_replica(tmp_path / "bnl-se", data=b"an older, wrong copy")

    transfer_file(make_transfer([source], destination), ["local"], timeout=TIMEOUT)

    assert destination.read_bytes() == PAYLOAD
    assert files_under(tmp_path / "bnl-se") == [destination]


# -- http ----------------------------------------------------------------------


def test_http_get_into_a_directory(tmp_path, storage):
    put_replica(storage.root)
    destination = Path(deterministic_pfn(str(tmp_path / "bnl-se"), LFN))
    transfer = make_transfer([deterministic_pfn(storage.url, LFN)], destination)

    outcome = transfer_file(transfer, DEFAULT_TOOLS, timeout=TIMEOUT)

    # `local` came first but has no local source: skipped, not a failure.
    assert (outcome.tool, outcome.failures) == ("http", ())
    assert destination.read_bytes() == PAYLOAD
    assert files_under(tmp_path / "bnl-se") == [destination]


def test_local_file_put_to_http_storage(tmp_path, storage):
    source = put_replica(tmp_path / "cern-se")
    url = deterministic_pfn(storage.url, LFN)

    outcome = transfer_file(make_transfer([source], url), DEFAULT_TOOLS, timeout=TIMEOUT)

    assert (outcome.tool, outcome.size, outcome.adler32) == ("http", len(PAYLOAD), adler32(PAYLOAD))
    assert Path(deterministic_pfn(str(storage.root), LFN)).read_bytes() == PAYLOAD
    assert [method for method, _, _ in storage.log] == ["HEAD", "PUT", "HEAD"]


def test_a_file_http_storage_already_holds_is_not_sent_again(tmp_path, storage):
    source = put_replica(tmp_path / "cern-se")
    put_replica(storage.root)

    outcome = transfer_file(make_transfer([source], deterministic_pfn(storage.url, LFN)), ["http"], timeout=TIMEOUT)

    assert outcome.tool == "http"
    assert [method for method, _, _ in storage.log] == ["HEAD"]


def test_storage_that_loses_bytes_is_a_tool_failure_and_cleaned_up(tmp_path, storage_factory):
    lossy = storage_factory(handler=LossyStorageHandler)
    source = put_replica(tmp_path / "cern-se")

    with pytest.raises(TransferFailed) as caught:
        transfer_file(make_transfer([source], deterministic_pfn(lossy.url, LFN)), ["http"], timeout=TIMEOUT)

    assert not caught.value.source_suspect  # the source was fine: the destination is to blame
    assert "after the PUT" in caught.value.failures[0][1]
    assert files_under(lossy.root) == []


def test_http_to_http_streams_through(storage_factory):
    cern, bnl = storage_factory("cern-se"), storage_factory("bnl-se")
    put_replica(cern.root)

    transfer = make_transfer([deterministic_pfn(cern.url, LFN)], deterministic_pfn(bnl.url, LFN))
    outcome = transfer_file(transfer, DEFAULT_TOOLS, timeout=TIMEOUT)

    assert outcome.tool == "http"
    assert Path(deterministic_pfn(str(bnl.root), LFN)).read_bytes() == PAYLOAD


def test_a_missing_http_source_is_a_clear_failure(tmp_path, storage):
    transfer = make_transfer([deterministic_pfn(storage.url, LFN)], tmp_path / "bnl-se" / LFN)

    with pytest.raises(TransferFailed) as caught:
        transfer_file(transfer, ["http"], timeout=TIMEOUT)

    assert not caught.value.source_suspect
    assert caught.value.failures[0][0] == "http"
    assert "source file not found" in caught.value.failures[0][1]
    assert files_under(tmp_path / "bnl-se") == []


def test_a_broken_connection_is_a_failure_not_a_bad_replica(tmp_path, storage):
    put_replica(storage.root)
    storage.break_after = 100  # promise the whole file, send 100 bytes, hang up
    bnl = tmp_path / "bnl-se"

    with pytest.raises(TransferFailed) as caught:
        transfer_file(make_transfer([deterministic_pfn(storage.url, LFN)], bnl / LFN), ["http"], timeout=TIMEOUT)

    assert not caught.value.source_suspect
    assert "broke off after 100" in caught.value.failures[0][1]
    assert files_under(bnl) == []


# -- fallback and timeouts -------------------------------------------------------


def test_a_refused_http_door_falls_back_to_the_local_mount(tmp_path, free_port):
    source = put_replica(tmp_path / "cern-se")
    destination = tmp_path / "bnl-se" / LFN
    door = deterministic_pfn(f"http://127.0.0.1:{free_port}", LFN)

    outcome = transfer_file(make_transfer([door, source], destination), ["http", "local"], timeout=TIMEOUT)

    assert outcome.tool == "local"
    assert [tool for tool, _ in outcome.failures] == ["http"]
    assert "refused" in outcome.failures[0][1].lower()
    assert destination.read_bytes() == PAYLOAD


def test_a_server_that_never_answers_costs_one_timeout_then_falls_back(tmp_path, silent_port):
    source = put_replica(tmp_path / "cern-se")
    destination = tmp_path / "bnl-se" / LFN
    door = deterministic_pfn(f"http://127.0.0.1:{silent_port}", LFN)

    started = time.monotonic()
    outcome = transfer_file(make_transfer([door, source], destination), ["http", "local"], timeout=1)

    assert time.monotonic() - started < 1 + 2
    assert outcome.tool == "local"
    assert [tool for tool, _ in outcome.failures] == ["http"]
    assert "timed out" in outcome.failures[0][1]
    assert destination.read_bytes() == PAYLOAD


def test_a_hopelessly_slow_transfer_is_cancelled_and_cleans_up(tmp_path, storage_factory):
    slow = storage_factory(handler=TricklingHandler)
    bnl = tmp_path / "bnl-se"
    transfer = make_transfer([deterministic_pfn(slow.url, LFN)], bnl / LFN)

    started = time.monotonic()
    with pytest.raises(TransferFailed) as caught:
        transfer_file(transfer, ["http"], timeout=1)

    assert time.monotonic() - started < 1 + 2
    assert caught.value.failures == (("http", "timed out after 1 s"),)
    assert not caught.value.source_suspect
    # The abandoned tool notices the cancel at its next chunk and removes its temporary file.
    deadline = time.monotonic() + 3
    while files_under(bnl) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert files_under(bnl) == []


def test_every_tool_failing_lists_each_error(tmp_path, storage):
    transfer = make_transfer(
        [tmp_path / "cern-se" / "gone", deterministic_pfn(storage.url, LFN)], tmp_path / "bnl-se" / LFN
    )

    with pytest.raises(TransferFailed) as caught:
        transfer_file(transfer, ["local", "http"], timeout=TIMEOUT)

    assert [tool for tool, _ in caught.value.failures] == ["local", "http"]
    assert all("source file not found" in message for _, message in caught.value.failures)
    assert not caught.value.source_suspect
    assert "\n" not in str(caught.value)
    assert "local: " in str(caught.value) and "http: " in str(caught.value)


# -- bad source bytes ------------------------------------------------------------


def test_a_checksum_mismatch_stops_at_once_and_leaves_nothing(tmp_path, storage):
    source = put_replica(tmp_path / "cern-se")
    put_replica(storage.root)  # the same (bad) replica behind a door: not worth trying
    bnl = tmp_path / "bnl-se"
    transfer = make_transfer([source, deterministic_pfn(storage.url, LFN)], bnl / LFN, adler32="0badc0de")

    with pytest.raises(TransferFailed) as caught:
        transfer_file(transfer, ["local", "http"], timeout=TIMEOUT)

    assert caught.value.source_suspect
    assert [tool for tool, _ in caught.value.failures] == ["local"]
    assert "adler32" in str(caught.value)
    assert files_under(bnl) == []  # neither the file nor a temporary one
    assert storage.log == []


def test_a_source_of_the_wrong_size_is_suspect(tmp_path):
    source = put_replica(tmp_path / "cern-se", data=PAYLOAD + b"trailing garbage")

    with pytest.raises(TransferFailed) as caught:
        transfer_file(make_transfer([source], tmp_path / "bnl-se" / LFN), ["local"], timeout=TIMEOUT)

    assert caught.value.source_suspect
    assert files_under(tmp_path / "bnl-se") == []


@pytest.mark.parametrize("stored", [PAYLOAD[:-1] + b"X", PAYLOAD[:-100]], ids=["bad-bytes", "short"])
def test_bad_bytes_from_an_http_source_are_suspect(tmp_path, storage, stored):
    put_replica(storage.root, data=stored)
    bnl = tmp_path / "bnl-se"

    with pytest.raises(TransferFailed) as caught:
        transfer_file(make_transfer([deterministic_pfn(storage.url, LFN)], bnl / LFN), ["http"], timeout=TIMEOUT)

    assert caught.value.source_suspect
    assert files_under(bnl) == []


def test_a_bad_source_put_to_http_is_deleted_again(tmp_path, storage):
    source = put_replica(tmp_path / "cern-se", data=PAYLOAD[:-1] + b"X")

    with pytest.raises(TransferFailed) as caught:
        transfer_file(make_transfer([source], deterministic_pfn(storage.url, LFN)), ["http"], timeout=TIMEOUT)

    assert caught.value.source_suspect
    assert "DELETE" in [method for method, _, _ in storage.log]
    assert files_under(storage.root) == []


def test_a_local_source_of_the_wrong_size_is_never_sent(tmp_path, storage):
    source = put_replica(tmp_path / "cern-se", data=PAYLOAD[:-1])

    with pytest.raises(TransferFailed) as caught:
        transfer_file(make_transfer([source], deterministic_pfn(storage.url, LFN)), ["http"], timeout=TIMEOUT)

    assert caught.value.source_suspect
    assert "PUT" not in [method for method, _, _ in storage.log]
    assert files_under(storage.root) == []


# -- choosing tools ----------------------------------------------------------------


def test_no_tool_supporting_the_transfer_says_so(tmp_path, storage):
    transfer = make_transfer([deterministic_pfn(storage.url, LFN)], tmp_path / "bnl-se" / LFN)

    with pytest.raises(TransferFailed) as caught:
        transfer_file(transfer, ["local"], timeout=TIMEOUT)

    assert "no transfer tool" in str(caught.value)
    assert caught.value.failures == ()
    assert not caught.value.source_suspect
    assert storage.log == []


def test_a_destination_no_tool_knows_is_unsupported(tmp_path):
    source = put_replica(tmp_path / "cern-se")

    with pytest.raises(TransferFailed, match="no transfer tool"):
        transfer_file(make_transfer([source], "root://eos.example.org//eos/" + LFN), DEFAULT_TOOLS, timeout=TIMEOUT)


def test_parse_tool_list():
    assert parse_tool_list("http, local") == ("http", "local")
    assert parse_tool_list(" LOCAL ,,local") == ("local",)
    assert parse_tool_list("") == DEFAULT_TOOLS == ("local", "http")
    assert parse_tool_list("  ") == DEFAULT_TOOLS
    assert {"local", "http"} <= set(TOOLS)


def test_parse_tool_list_rejects_unknown_names():
    with pytest.raises(ValueError) as caught:
        parse_tool_list("local, fts")
    assert str(caught.value) == "unknown transfer tool 'fts'; known: http, local"


def test_transfer_file_rejects_unknown_tool_names(tmp_path):
    with pytest.raises(ValueError, match="unknown transfer tool 'x'"):
        transfer_file(make_transfer([tmp_path / "a"], tmp_path / "b"), ["x"], timeout=TIMEOUT)

"""dq2 get's per-file logic: verified downloads, resuming, falling back to another replica."""

import io
import os

from client.checksums import adler32_of_bytes
from client.download import Wanted, get_file, order_replicas
from client.progress import Reporter
from client.storage import deterministic_pfn, local_path

DATA = os.urandom(200_000)
LFN = "user.alice.f1.root"
WANTED = Wanted(LFN, len(DATA), adler32_of_bytes(DATA))


def _site(tmp_path, name, data=DATA):
    """A directory storage element for one site, holding the file (unless data is None)."""
    pfn = deterministic_pfn(str(tmp_path / name), LFN)
    if data is not None:
        local_path(pfn).parent.mkdir(parents=True)
        local_path(pfn).write_bytes(data)
    return (name, pfn)


def _reporter():
    return Reporter(io.StringIO(), tty=False)


def test_downloads_verifies_and_reports_one_line(tmp_path):
    reporter = _reporter()
    assert get_file(WANTED, [_site(tmp_path, "BNL")], tmp_path / "out", reporter) is True
    assert (tmp_path / "out" / LFN).read_bytes() == DATA
    assert not (tmp_path / "out" / f"{LFN}.part").exists()
    lines = reporter.stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{LFN}: downloaded 200.0 kB from BNL")


def test_corrupted_first_replica_falls_back_to_the_next(tmp_path):
    corrupt = bytearray(DATA)
    corrupt[1000] ^= 0xFF
    sources = [_site(tmp_path, "BAD", bytes(corrupt)), _site(tmp_path, "GOOD")]
    reporter = _reporter()
    assert get_file(WANTED, sources, tmp_path / "out", reporter) is True
    assert (tmp_path / "out" / LFN).read_bytes() == DATA
    assert "from GOOD" in reporter.stream.getvalue()


def test_missing_first_replica_falls_back_to_the_next(tmp_path):
    sources = [_site(tmp_path, "EMPTY", data=None), _site(tmp_path, "GOOD")]
    assert get_file(WANTED, sources, tmp_path / "out", _reporter()) is True
    assert (tmp_path / "out" / LFN).read_bytes() == DATA


def test_every_replica_bad_fails_naming_each_problem(tmp_path):
    sources = [_site(tmp_path, "SHORT", DATA[:-1]), _site(tmp_path, "EMPTY", data=None)]
    reporter = _reporter()
    assert get_file(WANTED, sources, tmp_path / "out", reporter) is False
    line = reporter.stream.getvalue().strip()
    assert line.startswith(f"{LFN}: FAILED: SHORT: checksum mismatch: got 199999 bytes")
    assert "EMPTY: " in line and "missing from storage" in line
    assert not (tmp_path / "out" / LFN).exists()
    assert not (tmp_path / "out" / f"{LFN}.part").exists()  # bad bytes are never kept to resume from


def test_a_partial_download_is_resumed_with_a_range_request(tmp_path, http_storage):
    pfn = deterministic_pfn(http_storage.url, LFN)
    stored = http_storage.root / pfn.removeprefix(http_storage.url + "/")
    stored.parent.mkdir(parents=True)
    stored.write_bytes(DATA)
    out = tmp_path / "out"
    out.mkdir()
    (out / f"{LFN}.part").write_bytes(DATA[:70_000])
    assert get_file(WANTED, [("WEB", pfn)], out, _reporter()) is True
    assert (out / LFN).read_bytes() == DATA
    assert http_storage.log == [("GET", pfn.removeprefix(http_storage.url), "bytes=70000-")]


def test_a_bad_partial_download_is_redone_from_zero_at_the_same_site(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / f"{LFN}.part").write_bytes(b"\0" * 70_000)  # left by some earlier, broken run
    assert get_file(WANTED, [_site(tmp_path, "ONLY")], out, _reporter()) is True
    assert (out / LFN).read_bytes() == DATA


def test_a_file_already_present_is_skipped(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / LFN).write_bytes(DATA)
    reporter = _reporter()
    assert get_file(WANTED, [_site(tmp_path, "EMPTY", data=None)], out, reporter) is None
    assert "already present" in reporter.stream.getvalue()


def test_a_different_local_file_is_replaced(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / LFN).write_bytes(b"old content")
    assert get_file(WANTED, [_site(tmp_path, "BNL")], out, _reporter()) is True
    assert (out / LFN).read_bytes() == DATA


def test_replica_order_puts_the_chosen_site_first_and_skips_unusable_ones():
    replicas = [
        {"site": "A", "pfn": "/a/x", "state": "available"},
        {"site": "B", "pfn": "/b/x", "state": "bad"},
        {"site": "C", "pfn": "", "state": "available", "storage_endpoint": "/c"},
        {"site": "D", "pfn": "/d/x", "state": "available"},
    ]
    order = order_replicas("x", replicas, "D")
    assert order == [("D", "/d/x"), ("A", "/a/x"), ("C", deterministic_pfn("/c", "x"))]


def test_progress_bar_on_a_terminal(tmp_path):
    reporter = Reporter(io.StringIO(), tty=True)
    assert get_file(WANTED, [_site(tmp_path, "BNL")], tmp_path / "out", reporter) is True
    text = reporter.stream.getvalue()
    assert "\r\033[K" + LFN + " [" in text and "%" in text  # the bar, redrawn in place
    assert text.rstrip("\n").rsplit("\r\033[K", 1)[1].startswith(f"{LFN}: downloaded")  # then the outcome

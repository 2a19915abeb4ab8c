"""Checksums, the PFN rule, and reading/writing directory and HTTP storage (no catalog involved)."""

import hashlib
import os
import zlib

import pytest

from client.checksums import Digest, FileFacts, adler32_of_bytes, file_facts, normalize_adler32
from client.errors import StorageError
from client.storage import deterministic_pfn, fetch, local_path, store

DATA = os.urandom(300_000)


def test_adler32_of_known_data():
    # The textbook value (Wikipedia's "Wikipedia" example) and the empty input.
    assert adler32_of_bytes(b"Wikipedia") == "11e60398"
    assert adler32_of_bytes(b"") == "00000001"
    assert normalize_adler32("AD:11E60398") == "11e60398"


def test_file_facts_stream_in_chunks(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(DATA * 5)  # more than one read chunk
    facts = file_facts(path, with_md5=True)
    assert facts == FileFacts(len(DATA) * 5, f"{zlib.adler32(DATA * 5):08x}", hashlib.md5(DATA * 5).hexdigest())


def test_digest_of_a_prefix_then_the_rest_equals_the_whole(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(DATA)
    digest = Digest()
    digest.update_from_file(path, limit=1000)
    digest.update(DATA[1000:])
    assert (digest.size, digest.adler32) == (len(DATA), adler32_of_bytes(DATA))


def test_deterministic_pfn_is_the_catalog_rule():
    digest = hashlib.md5(b"user.alice.f1.root").hexdigest()
    expected = f"/se/BNL/{digest[:2]}/{digest[2:4]}/user.alice.f1.root"
    assert deterministic_pfn("/se/BNL/", "user.alice.f1.root") == expected
    assert deterministic_pfn("http://se:8443/data", "x").startswith("http://se:8443/data/9d/d4/x")
    assert local_path("file:///se/BNL/ab/cd/x") == local_path("/se/BNL/ab/cd/x")


# -- directory storage -----------------------------------------------------------------


def _stored(tmp_path, data=DATA, name="f.root"):
    pfn = deterministic_pfn(str(tmp_path / "se"), name)
    local_path(pfn).parent.mkdir(parents=True)
    local_path(pfn).write_bytes(data)
    return pfn


def test_directory_fetch_resumes_from_a_partial_file(tmp_path):
    pfn = _stored(tmp_path)
    part = tmp_path / "f.root.part"
    part.write_bytes(DATA[:100_000])
    moved = []
    digest = fetch(pfn, part, len(DATA), moved.append)
    assert part.read_bytes() == DATA
    assert (digest.size, digest.adler32) == (len(DATA), adler32_of_bytes(DATA))
    assert sum(moved) == len(DATA) and moved[0] == 100_000  # the kept prefix, then the rest


def test_directory_fetch_of_a_complete_part_reads_nothing_more(tmp_path):
    pfn = _stored(tmp_path)
    local_path(pfn).unlink()  # the source is gone: a complete part must not need it
    part = tmp_path / "f.root.part"
    part.write_bytes(DATA)
    assert fetch(pfn, part, len(DATA)).adler32 == adler32_of_bytes(DATA)


def test_directory_fetch_restarts_a_part_longer_than_the_file(tmp_path):
    pfn = _stored(tmp_path)
    part = tmp_path / "f.root.part"
    part.write_bytes(b"x" * (len(DATA) + 10))
    fetch(pfn, part, len(DATA))
    assert part.read_bytes() == DATA


def test_missing_directory_file_is_reported(tmp_path):
    with pytest.raises(StorageError, match="missing from storage") as info:
        fetch(str(tmp_path / "se" / "nothing"), tmp_path / "x.part", 10)
    assert not info.value.transient


def test_directory_store_writes_via_a_temporary_file_and_verifies(tmp_path):
    source = tmp_path / "f.root"
    source.write_bytes(DATA)
    facts = file_facts(source)
    pfn = deterministic_pfn(str(tmp_path / "se"), "f.root")
    assert store(source, pfn, facts) is True
    assert local_path(pfn).read_bytes() == DATA
    assert [p.name for p in local_path(pfn).parent.iterdir()] == ["f.root"]  # no temporary file left
    assert store(source, pfn, facts) is False  # already there with the same checksum: not copied again


def test_directory_store_notices_a_file_that_is_not_what_was_checksummed(tmp_path):
    source = tmp_path / "f.root"
    source.write_bytes(DATA)
    stale = FileFacts(len(DATA), "00000001")  # as if the file changed after it was checksummed
    with pytest.raises(StorageError, match="expected"):
        store(source, deterministic_pfn(str(tmp_path / "se"), "f.root"), stale)


# -- HTTP storage ----------------------------------------------------------------------


def _on_http(http_storage, data=DATA, name="f.root"):
    pfn = deterministic_pfn(http_storage.url, name)
    path = http_storage.root / pfn.removeprefix(http_storage.url + "/")
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return pfn


def test_http_fetch_resumes_with_a_range_request(http_storage, tmp_path):
    pfn = _on_http(http_storage)
    part = tmp_path / "f.root.part"
    part.write_bytes(DATA[:123_456])
    digest = fetch(pfn, part, len(DATA))
    assert part.read_bytes() == DATA and digest.adler32 == adler32_of_bytes(DATA)
    assert http_storage.log[-1][2] == "bytes=123456-"


def test_http_fetch_starts_over_when_the_server_ignores_range(http_storage, tmp_path):
    http_storage.ignore_range = True
    pfn = _on_http(http_storage)
    part = tmp_path / "f.root.part"
    part.write_bytes(b"garbage!" * 100)
    digest = fetch(pfn, part, len(DATA))
    assert part.read_bytes() == DATA and digest.adler32 == adler32_of_bytes(DATA)


def test_broken_http_transfer_is_transient_and_the_next_try_continues(http_storage, tmp_path):
    pfn = _on_http(http_storage)
    http_storage.break_after = 50_000
    part = tmp_path / "f.root.part"
    with pytest.raises(StorageError, match="broke off") as info:
        fetch(pfn, part, len(DATA))
    assert info.value.transient and part.stat().st_size == 50_000
    fetch(pfn, part, len(DATA))
    assert part.read_bytes() == DATA
    assert http_storage.log[-1][2] == "bytes=50000-"


def test_http_fetch_of_a_missing_file(http_storage, tmp_path):
    with pytest.raises(StorageError, match="HTTP 404"):
        fetch(http_storage.url + "/no/such/file", tmp_path / "x.part", 10)


def test_http_store_puts_and_verifies_size_and_digest(http_storage, tmp_path):
    source = tmp_path / "f.root"
    source.write_bytes(DATA)
    pfn = deterministic_pfn(http_storage.url, "f.root")
    assert store(source, pfn, file_facts(source)) is True
    assert (http_storage.root / pfn.removeprefix(http_storage.url + "/")).read_bytes() == DATA
    assert [method for method, _, _ in http_storage.log] == ["HEAD", "PUT", "HEAD"]
    assert store(source, pfn, file_facts(source)) is False  # HEAD shows it is there: no second PUT
    assert [method for method, _, _ in http_storage.log].count("PUT") == 1


def test_http_store_without_digest_checks_the_size(http_storage, tmp_path):
    http_storage.send_digest = False
    source = tmp_path / "f.root"
    source.write_bytes(DATA)
    assert store(source, deterministic_pfn(http_storage.url, "f.root"), file_facts(source)) is True


def test_unreachable_http_storage_is_transient(tmp_path):
    source = tmp_path / "f.root"
    source.write_bytes(b"data")
    with pytest.raises(StorageError, match="cannot reach storage") as info:
        store(source, "http://127.0.0.1:9/se/f.root", file_facts(source))
    assert info.value.transient

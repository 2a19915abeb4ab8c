"""Checksums, stage-in verification, stage-out and the log tarball."""

import hashlib
import json
import tarfile
import zlib

import pytest

from client.storage import deterministic_pfn
from pilot import errors
from pilot.errors import PilotFailure
from pilot.files import adler32_of_file, copy_with_facts, is_safe_lfn, parse_checksum
from pilot.jobspec import InputFile
from pilot.stagein import stage_in
from pilot.stageout import OutputReport, create_log_tarball, stage_out_file, stage_out_outputs

CONTENT = b"Wikipedia"  # the textbook adler32 example: 0x11E60398


def adler_hex(data: bytes) -> str:
    return f"{zlib.adler32(data):08x}"


def test_adler32_matches_zlib_on_known_file(tmp_path):
    path = tmp_path / "known.dat"
    path.write_bytes(CONTENT)
    assert adler32_of_file(str(path)) == "11e60398" == adler_hex(CONTENT)


def test_adler32_of_multi_chunk_file_and_leading_zeros(tmp_path):
    big = bytes(range(256)) * 20000  # > 1 MiB: several read chunks
    (tmp_path / "big").write_bytes(big)
    (tmp_path / "empty").write_bytes(b"")
    assert adler32_of_file(str(tmp_path / "big")) == adler_hex(big)
    assert adler32_of_file(str(tmp_path / "empty")) == "00000001"  # 8 digits, zero-padded


def test_copy_with_facts_checksums_in_one_pass(tmp_path):
    (tmp_path / "src").write_bytes(CONTENT)
    facts = copy_with_facts(str(tmp_path / "src"), str(tmp_path / "dst"), with_md5=True)
    assert (tmp_path / "dst").read_bytes() == CONTENT
    assert (facts.size, facts.adler32) == (9, "11e60398")
    assert facts.md5 == hashlib.md5(CONTENT).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst", "src"]  # no .part left over


@pytest.mark.parametrize(
    "checksum, expected",
    [
        ("ad:0a1b2c3d", ("adler32", "0a1b2c3d")),
        ("AD:A1B2C3D", ("adler32", "0a1b2c3d")),
        ("0a1b2c3d", ("adler32", "0a1b2c3d")),
        ("md5:" + "f" * 32, ("md5", "f" * 32)),
        ("", None),
        (None, None),
    ],
)
def test_parse_checksum(checksum, expected):
    assert parse_checksum(checksum) == expected


@pytest.mark.parametrize(
    "lfn, safe", [("out.root", True), ("../etc/passwd", False), ("a/b", False), ("..", False), ("", False)]
)
def test_is_safe_lfn(lfn, safe):
    assert is_safe_lfn(lfn) is safe


@pytest.fixture
def storage(tmp_path):
    storage_dir = tmp_path / "storage"
    storage_dir.mkdir()
    (storage_dir / "in.root").write_bytes(CONTENT)
    workdir = tmp_path / "work"
    workdir.mkdir()
    return storage_dir, workdir


def test_stage_in_copies_and_verifies(storage):
    storage_dir, workdir = storage
    stage_in([InputFile("in.root", "g1", 9, "ad:11e60398")], str(storage_dir), str(workdir))
    assert (workdir / "in.root").read_bytes() == CONTENT


def test_stage_in_adler32_mismatch(storage):
    storage_dir, workdir = storage
    with pytest.raises(PilotFailure) as failure:
        stage_in([InputFile("in.root", "g1", 9, "ad:deadbeef")], str(storage_dir), str(workdir))
    assert failure.value.code == errors.GETADMISMATCH == 1171
    assert "deadbeef" in failure.value.diag and "11e60398" in failure.value.diag


def test_stage_in_md5_mismatch(storage):
    storage_dir, workdir = storage
    with pytest.raises(PilotFailure) as failure:
        stage_in([InputFile("in.root", checksum="md5:" + "0" * 32)], str(storage_dir), str(workdir))
    assert failure.value.code == errors.GETMD5MISMATCH


def test_stage_in_size_mismatch(storage):
    storage_dir, workdir = storage
    with pytest.raises(PilotFailure) as failure:
        stage_in([InputFile("in.root", fsize=10)], str(storage_dir), str(workdir))
    assert failure.value.code == errors.STAGEINFAILED
    assert "size mismatch" in failure.value.diag


def test_stage_in_missing_file(storage):
    storage_dir, workdir = storage
    with pytest.raises(PilotFailure) as failure:
        stage_in([InputFile("absent.root")], str(storage_dir), str(workdir))
    assert failure.value.code == errors.MISSINGINPUTFILE


def test_stage_in_without_storage_dir(storage):
    _, workdir = storage
    with pytest.raises(PilotFailure) as failure:
        stage_in([InputFile("in.root")], None, str(workdir))
    assert failure.value.code == errors.STAGEINFAILED
    assert "--storage-dir" in failure.value.diag


def test_stage_in_refuses_path_traversal(storage):
    storage_dir, workdir = storage
    with pytest.raises(PilotFailure) as failure:
        stage_in([InputFile("../storage/in.root")], str(storage_dir), str(workdir))
    assert failure.value.code == errors.STAGEINFAILED


def test_stage_out_copies_to_storage_and_reports(storage):
    storage_dir, workdir = storage
    (workdir / "out.root").write_bytes(CONTENT)
    report = OutputReport()

    stage_out_outputs(["out.root"], str(workdir), str(storage_dir), report, require_all=True)

    entry = json.loads(report.to_xml())["out.root"]
    assert entry["fsize"] == 9 and entry["adler32"] == "11e60398"
    stored = deterministic_pfn(str(storage_dir), "out.root")
    assert entry["surl"] == f"file://{stored}"
    assert open(stored, "rb").read() == CONTENT
    assert not (storage_dir / "out.root").exists()  # never at the flat place
    assert len(entry["guid"]) == 36


def test_missing_output_after_success_fails_with_missing_output_code(storage):
    storage_dir, workdir = storage
    (workdir / "a.root").write_bytes(b"a")
    report = OutputReport()
    with pytest.raises(PilotFailure) as failure:
        stage_out_outputs(["a.root", "b.root"], str(workdir), str(storage_dir), report, require_all=True)
    assert failure.value.code == errors.MISSINGOUTPUTFILE == 1165
    assert "b.root" in failure.value.diag
    assert list(report.entries) == ["a.root"]  # what exists is still declared


def test_missing_output_after_failure_is_tolerated(storage):
    storage_dir, workdir = storage
    stage_out_outputs(["b.root"], str(workdir), str(storage_dir), OutputReport(), require_all=False)


def test_stage_out_without_storage_declares_with_empty_surl(storage):
    _, workdir = storage
    (workdir / "log.tgz").write_bytes(CONTENT)
    report = OutputReport()
    stage_out_file(str(workdir / "log.tgz"), "log.tgz", "log-guid", None, report)
    assert report.entries["log.tgz"] == {"guid": "log-guid", "fsize": 9, "adler32": "11e60398", "surl": ""}


def test_log_tarball_contents(storage):
    _, workdir = storage
    (workdir / "payload.stdout").write_text("out\n")
    (workdir / "payload.stderr").write_text("err\n")
    (workdir / "pilot.log").write_text("pilot\n")
    (workdir / "notes.txt").write_text("small file\n")
    (workdir / "huge.bin").write_bytes(b"x" * (2 * 1024 * 1024))
    (workdir / "in.root").write_bytes(b"input")
    (workdir / "out.root").write_bytes(b"output")
    (workdir / "sub").mkdir()
    (workdir / "sub" / "inner.txt").write_text("inner\n")
    (workdir / "link").symlink_to("/etc/passwd")

    path = create_log_tarball(
        str(workdir),
        "job.log.tgz",
        "PandaJob_7",
        {"in.root", "out.root"},
        always_include={"payload.stdout", "payload.stderr", "pilot.log"},
    )

    with tarfile.open(path) as tarball:
        names = sorted(tarball.getnames())
        stdout = tarball.extractfile("PandaJob_7/payload.stdout").read()
    assert names == [
        "PandaJob_7/notes.txt",
        "PandaJob_7/payload.stderr",
        "PandaJob_7/payload.stdout",
        "PandaJob_7/pilot.log",
        "PandaJob_7/sub/inner.txt",
    ]
    assert stdout == b"out\n"

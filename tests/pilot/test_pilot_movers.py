"""Site movers: the deterministic layout, the directory and HTTP movers, and transfer deadlines.

Real files in tmp dirs; real HTTP servers on 127.0.0.1 (the dq2 client tests'
storage element, and one that never answers).
"""

import hashlib
import json
import threading
import time
import zlib
from pathlib import Path

import pytest

from client.storage import deterministic_pfn
from pilot import errors
from pilot.deadline import TransferInterrupted, TransferTimeout, run_with_deadline
from pilot.errors import PilotFailure
from pilot.jobspec import InputFile
from pilot.movers import TransferPolicy, deterministic_path, mover_for
from pilot.payload import KillSwitch
from pilot.stagein import stage_in
from pilot.stageout import OutputReport, stage_out_file, stage_out_outputs

from .test_pilot_jobflow import FakeDispatcher, job_answer, make_pilot

CONTENT = b"Wikipedia"
ADLER = "11e60398"
FAST = TransferPolicy(timeout=1.0, http_timeout=30.0)


def put(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def storage(tmp_path):
    return tmp_path / "se"


@pytest.fixture
def work(tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    return workdir


def test_deterministic_path_is_the_catalog_rule():
    digest = hashlib.md5(b"user.alice.f1.root").hexdigest()
    assert (
        deterministic_path("/se/BNL/", "user.alice.f1.root") == f"/se/BNL/{digest[:2]}/{digest[2:4]}/user.alice.f1.root"
    )
    for storage in ("/se", "http://se:8443/data/"):
        assert deterministic_path(storage, "x.root") == deterministic_pfn(storage, "x.root")


def test_mover_choice_by_location(tmp_path):
    assert str(mover_for(str(tmp_path))) == str(tmp_path)
    assert str(mover_for(f"file://{tmp_path}")) == str(tmp_path)
    assert type(mover_for("https://se.example:8443/data")).__name__ == "HttpMover"


# -- directory mover ------------------------------------------------------------


def test_stage_in_prefers_the_deterministic_place(storage, work):
    put(Path(deterministic_pfn(str(storage), "in.root")), CONTENT)
    put(storage / "in.root", b"an older copy at the flat place")

    stage_in([InputFile("in.root", fsize=9, checksum=f"ad:{ADLER}")], str(storage), str(work))

    assert (work / "in.root").read_bytes() == CONTENT


def test_stage_in_falls_back_to_the_flat_place(storage, work):
    put(storage / "in.root", CONTENT)
    stage_in([InputFile("in.root", checksum=f"ad:{ADLER}")], f"file://{storage}", str(work))
    assert (work / "in.root").read_bytes() == CONTENT


def test_stage_in_finds_a_copy_in_the_sites_user_area(storage, work):
    """The transfer agent puts users' copies under <storage>/userarea/ where the site has a user area."""
    put(Path(deterministic_pfn(str(storage / "userarea"), "user.in.root")), CONTENT)
    stage_in([InputFile("user.in.root", checksum=f"ad:{ADLER}")], str(storage), str(work))
    assert (work / "user.in.root").read_bytes() == CONTENT


def test_http_stage_in_finds_a_copy_in_the_user_area(http_storage, work):
    put(Path(deterministic_pfn(str(http_storage.root / "data" / "userarea"), "user.in.root")), CONTENT)
    stage_in([InputFile("user.in.root", checksum=f"ad:{ADLER}")], f"{http_storage.url}/data", str(work))
    assert (work / "user.in.root").read_bytes() == CONTENT


def test_missing_input_names_both_places(storage, work):
    storage.mkdir()
    with pytest.raises(PilotFailure) as failure:
        stage_in([InputFile("absent.root")], str(storage), str(work))
    assert failure.value.code == errors.MISSINGINPUTFILE
    assert deterministic_pfn(str(storage), "absent.root") in failure.value.diag
    assert str(storage / "absent.root") in failure.value.diag


def test_stage_out_writes_the_deterministic_place_and_reports_its_surl(storage, work):
    (work / "out.root").write_bytes(CONTENT)
    report = OutputReport()

    stage_out_outputs(["out.root"], str(work), f"file://{storage}", report, require_all=True)

    stored = Path(deterministic_pfn(str(storage), "out.root"))
    assert stored.read_bytes() == CONTENT
    assert report.entries["out.root"]["surl"] == f"file://{stored}"
    assert sorted(p.name for p in stored.parent.iterdir()) == ["out.root"]  # no temporary file left


# -- HTTP mover -----------------------------------------------------------------


def test_http_stage_in_from_the_deterministic_place(http_storage, work):
    put(Path(deterministic_pfn(str(http_storage.root / "data"), "in.root")), CONTENT)
    md5 = hashlib.md5(CONTENT).hexdigest()

    stage_in([InputFile("in.root", fsize=9, checksum=f"md5:{md5}")], f"{http_storage.url}/data", str(work))

    assert (work / "in.root").read_bytes() == CONTENT
    assert [entry[:2] for entry in http_storage.log] == [("GET", deterministic_pfn("/data", "in.root"))]


def test_http_stage_in_falls_back_to_the_flat_place(http_storage, work):
    put(http_storage.root / "data" / "in.root", CONTENT)

    stage_in([InputFile("in.root", checksum=f"ad:{ADLER}")], f"{http_storage.url}/data", str(work))

    assert (work / "in.root").read_bytes() == CONTENT
    assert [entry[1] for entry in http_storage.log] == [deterministic_pfn("/data", "in.root"), "/data/in.root"]


def test_http_stage_in_of_a_broken_transfer_fails_and_leaves_nothing(http_storage, work):
    put(http_storage.root / "in.root", CONTENT)
    http_storage.break_after = 4  # promise 9 bytes, send 4, hang up

    with pytest.raises(PilotFailure) as failure:
        stage_in([InputFile("in.root")], http_storage.url, str(work))

    assert failure.value.code == errors.STAGEINFAILED
    assert "broke off" in failure.value.diag
    assert list(work.iterdir()) == []


def test_http_stage_out_puts_and_reports_the_url(http_storage, work):
    (work / "out.root").write_bytes(CONTENT)
    report = OutputReport()

    stage_out_file(str(work / "out.root"), "out.root", "g-1", f"{http_storage.url}/data", report)

    url = deterministic_pfn(f"{http_storage.url}/data", "out.root")
    assert report.entries["out.root"] == {"guid": "g-1", "fsize": 9, "adler32": ADLER, "surl": url}
    assert Path(deterministic_pfn(str(http_storage.root / "data"), "out.root")).read_bytes() == CONTENT
    path = deterministic_pfn("/data", "out.root")
    assert [entry[:2] for entry in http_storage.log] == [("PUT", path), ("HEAD", path)]


def test_http_stage_out_detects_a_storage_holding_other_bytes(http_storage, work, monkeypatch):
    (work / "out.root").write_bytes(CONTENT)
    original = Path.write_bytes

    def corrupting_write(path, data):  # the storage server's disk flips a byte
        return original(path, data[:-1] + b"X" if path.name == "out.root" and "http-se" in str(path) else data)

    monkeypatch.setattr(Path, "write_bytes", corrupting_write)
    with pytest.raises(PilotFailure) as failure:
        stage_out_file(str(work / "out.root"), "out.root", "g-1", http_storage.url, OutputReport())
    assert failure.value.code == errors.PUTADMISMATCH


def test_whole_job_with_http_storage(stub_server, http_storage, tmp_path):
    put(Path(deterministic_pfn(str(http_storage.root), "in.root")), CONTENT)
    job = job_answer(inFiles="in.root", GUID="in-guid", fsize="9", checksum=f"ad:{ADLER}")
    dispatcher = FakeDispatcher(stub_server, [job])

    make_pilot(stub_server, (tmp_path / "work", tmp_path / "unused"), storage_dir=http_storage.url).run()

    assert dispatcher.final["state"] == "finished", dispatcher.final["pilotErrorDiag"]
    files = json.loads(dispatcher.final["xml"])
    assert files["out1.root"]["surl"] == deterministic_pfn(http_storage.url, "out1.root")
    stored = Path(deterministic_pfn(str(http_storage.root), "out1.root")).read_bytes()
    assert stored == CONTENT and f"{zlib.adler32(stored):08x}" == files["out1.root"]["adler32"]
    assert Path(deterministic_pfn(str(http_storage.root), "job.log.tgz")).exists()
    assert not stub_server.requests_to("/api/v1/sites/SITE_A/space")  # HTTP storage: no space to report


# -- deadlines ------------------------------------------------------------------


def test_stage_in_from_a_storage_that_never_answers_times_out(silent_storage, work):
    started = time.monotonic()

    with pytest.raises(PilotFailure) as failure:
        stage_in([InputFile("in.root")], silent_storage, str(work), FAST)

    assert time.monotonic() - started < 3
    assert failure.value.code == errors.STAGEINTIMEOUT == 1151
    assert "timed out" in failure.value.diag and "in.root" in failure.value.diag
    assert list(work.iterdir()) == []


def test_stage_out_to_a_storage_that_never_answers_times_out(silent_storage, work):
    (work / "out.root").write_bytes(CONTENT)
    with pytest.raises(PilotFailure) as failure:
        stage_out_file(str(work / "out.root"), "out.root", "g", silent_storage, OutputReport(), FAST)
    assert failure.value.code == errors.STAGEOUTTIMEOUT == 1152
    assert "timed out during stage-out" in failure.value.diag


def test_job_against_a_hanging_storage_fails_with_the_timeout_code(stub_server, silent_storage, tmp_path):
    dispatcher = FakeDispatcher(stub_server, [job_answer(inFiles="in.root")])
    started = time.monotonic()

    make_pilot(stub_server, (tmp_path / "work", tmp_path / "x"), storage_dir=silent_storage, stage_timeout=1.0).run()

    # 1 s for the input, 1 s for the log's stage-out, never the 60 s of a socket timeout
    assert time.monotonic() - started < 6
    assert dispatcher.states == ["starting", "failed"]
    assert dispatcher.final["pilotErrorCode"] == str(errors.STAGEINTIMEOUT)
    assert "timed out" in dispatcher.final["pilotErrorDiag"]


def test_a_cancelled_directory_copy_never_gets_its_final_name(tmp_path):
    source = put(tmp_path / "src" / "big.root", b"x" * (3 * 1024 * 1024))
    mover = mover_for(str(tmp_path / "se"))
    cancel = threading.Event()
    cancel.set()

    with pytest.raises(Exception, match="cancelled"):
        mover.store(str(source), "big.root", cancel)

    stored = Path(deterministic_pfn(str(tmp_path / "se"), "big.root"))
    assert not stored.exists() and list(stored.parent.iterdir()) == []


def test_deadline_returns_values_and_raises_errors():
    assert run_with_deadline(lambda cancel: 42, 5, "t") == 42
    with pytest.raises(ZeroDivisionError):
        run_with_deadline(lambda cancel: 1 / 0, 5, "t")


def test_deadline_sets_cancel_on_timeout():
    seen = []

    def stuck(cancel):
        seen.append(cancel)
        cancel.wait(10)

    with pytest.raises(TransferTimeout):
        run_with_deadline(stuck, 0.2, "t")
    assert seen[0].is_set()


def test_a_stop_during_the_transfer_interrupts_it_but_an_earlier_one_does_not():
    stop = KillSwitch()
    threading.Timer(0.2, stop.trigger, (errors.SIGTERM, "pilot received SIGTERM")).start()
    started = time.monotonic()
    with pytest.raises(TransferInterrupted):
        run_with_deadline(lambda cancel: cancel.wait(10), 30, "t", interrupt=stop)
    assert time.monotonic() - started < 2
    # Already stopped before it began (a killed job's log stage-out): runs to the end.
    assert run_with_deadline(lambda cancel: "log staged out", 5, "t", interrupt=stop) == "log staged out"

"""The looping-job killer: a payload that leaves its work directory untouched is killed with 1150."""

import os
import time

import pytest

from pilot import errors
from pilot.jobspec import parse_job
from pilot.looping import (
    PILOT_LOG_NAME,
    LoopingMonitor,
    check_interval_for,
    looping_check_enabled,
    newest_mtime,
)
from pilot.payload import KillSwitch

from .test_pilot_jobflow import FakeDispatcher, job_answer, make_pilot


@pytest.fixture
def dirs(tmp_path):
    storage_dir = tmp_path / "storage"
    storage_dir.mkdir()
    return tmp_path / "work", storage_dir


def age(path, seconds):
    """Set a file's modification time `seconds` into the past."""
    past = time.time() - seconds
    os.utime(path, (past, past), follow_symlinks=False)


# -- the directory walk ---------------------------------------------------------------------------


def test_newest_mtime_sees_nested_files_and_ignores_the_pilots_own(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    for name in ("a.txt", "sub/b.txt", "sub/deeper/c.txt", PILOT_LOG_NAME, "pilot_state.json",
                 "pilot_state.json.1a2b3c4d.tmp"):  # fmt: skip
        (tmp_path / name).write_text("x")
    for path in ("a.txt", "sub/b.txt", "sub/deeper/c.txt", "sub/deeper", "sub"):
        age(tmp_path / path, 1000)
    newest, complete = newest_mtime(str(tmp_path))
    assert complete and time.time() - newest == pytest.approx(1000, abs=5)  # pilot files are fresh, not counted

    (tmp_path / "sub" / "deeper" / "c.txt").write_text("progress")
    assert time.time() - newest_mtime(str(tmp_path))[0] < 5


def test_symlinks_are_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "busy.log").write_text("changes all the time")
    work = tmp_path / "work"
    work.mkdir()
    os.symlink(outside, work / "link")
    age(work / "link", 500)
    newest, _ = newest_mtime(str(work))
    assert time.time() - newest == pytest.approx(500, abs=5)


def test_the_walk_is_bounded(tmp_path):
    for n in range(30):
        (tmp_path / f"f{n}").write_text("x")
    assert newest_mtime(str(tmp_path), max_entries=10)[1] is False
    assert newest_mtime(str(tmp_path), max_entries=100)[1] is True


def test_check_interval_is_a_tenth_of_the_limit_within_bounds():
    assert check_interval_for(7200) == 600
    assert check_interval_for(100) == 10
    assert check_interval_for(1) == 0.5


# -- the monitor's decision ---------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = time.time()

    def __call__(self):
        return self.now


def test_monitor_kills_after_the_limit_and_says_how_long_it_was_idle(tmp_path):
    clock, kill_switch = Clock(), KillSwitch()
    (tmp_path / "out.root").write_text("x")
    monitor = LoopingMonitor(str(tmp_path), 7200, kill_switch, clock=clock)
    clock.now += 7000
    assert monitor.check() is False and not kill_switch.is_set()
    clock.now += 250
    assert monitor.check() is True
    assert kill_switch.code == errors.LOOPINGJOB == 1150
    assert "no file in the work directory was changed for 7250 s (looping limit 7200 s)" in kill_switch.diag


def test_activity_resets_the_clock(tmp_path):
    clock, kill_switch = Clock(), KillSwitch()
    monitor = LoopingMonitor(str(tmp_path), 100, kill_switch, clock=clock)
    clock.now += 90
    (tmp_path / "progress").write_text("x")
    os.utime(tmp_path / "progress", (clock.now, clock.now))
    clock.now += 90
    assert monitor.check() is False
    clock.now += 20
    assert monitor.check() is True


def test_an_inconclusive_walk_never_kills(tmp_path, monkeypatch):
    monkeypatch.setattr("pilot.looping.newest_mtime", lambda workdir: (0.0, False))
    clock, kill_switch = Clock(), KillSwitch()
    monitor = LoopingMonitor(str(tmp_path), 10, kill_switch, clock=clock)
    clock.now += 1000
    assert monitor.check() is False and not kill_switch.is_set()


@pytest.mark.parametrize(("sent", "enabled"), [(None, True), (True, True), ("True", True), (False, False),
                                               ("False", False), ("false", False), (0, False), ("NULL", True)])  # fmt: skip
def test_loopingcheck_from_the_dispatcher(sent, enabled):
    answer = {"PandaID": 1} if sent is None else {"PandaID": 1, "loopingCheck": sent}
    assert looping_check_enabled(parse_job(answer)) is enabled  # unset: on, PanDA's default


# -- whole jobs against a stub dispatcher -------------------------------------------------------------


def test_a_sleeping_payload_is_killed_as_looping(stub_server, dirs):
    job = job_answer(transformation="/bin/sleep", jobPars="30", outFiles="", loopingCheck=True)
    dispatcher = FakeDispatcher(stub_server, [job])
    started = time.monotonic()

    make_pilot(stub_server, dirs, looping_timeout=1.5, heartbeat=60).run()

    assert time.monotonic() - started < 8
    final = dispatcher.final
    assert final["state"] == "failed"
    assert final["pilotErrorCode"] == "1150"
    assert final["pilotErrorDiag"].startswith("Looping job killed by pilot: no file in the work directory was changed")
    assert final["transExitCode"] == "143"  # 128 + SIGTERM


def test_a_payload_that_keeps_writing_is_left_alone(stub_server, dirs):
    script = "#!/bin/sh\nfor i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo step $i; sleep 0.25; done\n"
    dispatcher = FakeDispatcher(stub_server, [job_answer(transformation=script, outFiles="", loopingCheck=True)])

    make_pilot(stub_server, dirs, looping_timeout=1.5).run()

    assert dispatcher.final["state"] == "finished", dispatcher.final.get("pilotErrorDiag")


def test_loopingcheck_false_from_the_dispatcher_disables_it(stub_server, dirs):
    job = job_answer(transformation="/bin/sleep", jobPars="2.5", outFiles="", loopingCheck=False)
    dispatcher = FakeDispatcher(stub_server, [job])

    make_pilot(stub_server, dirs, looping_timeout=1).run()

    assert dispatcher.final["state"] == "finished"


def test_command_line_options():
    from pilot.__main__ import build_parser, settings_from_args

    base = ["--server", "http://x", "--site", "S"]
    chosen = settings_from_args(build_parser().parse_args([*base, "--looping-timeout", "30", "--debug-heartbeat", "5"]),
                                None)  # fmt: skip
    assert (chosen.looping_timeout, chosen.debug_heartbeat) == (30.0, 5.0)
    defaults = settings_from_args(build_parser().parse_args(base), None)
    assert (defaults.looping_timeout, defaults.debug_heartbeat) == (7200.0, 60.0)  # PanDA's
    with pytest.raises(SystemExit):
        build_parser().parse_args([*base, "--looping-timeout", "0"])

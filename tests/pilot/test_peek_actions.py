"""Peeks on the pilot: the three fixed read-only looks, and how heartbeats carry requests and answers."""

import json
import os
import time

import pytest

from pilot.heartbeat import ServerControl
from pilot.payload import start_payload
from pilot.peek import ANSWER_LIMIT, Peeker, directory_listing, process_tree

from .test_pilot_jobflow import FakeDispatcher, job_answer, make_pilot

SLEEPER = "#!/bin/sh\necho 'step 1'\necho 'warming up' >&2\nsleep 30 &\nsleep 30\n"


@pytest.fixture
def dirs(tmp_path):
    storage_dir = tmp_path / "storage"
    storage_dir.mkdir()
    return tmp_path / "work", storage_dir


# -- the looks themselves ---------------------------------------------------------------------------


def test_tail_shows_the_end_of_stdout_and_stderr(tmp_path):
    (tmp_path / "payload.stdout").write_text("".join(f"out {n}\n" for n in range(500)))
    (tmp_path / "payload.stderr").write_text("err 1\nerr 2\n")
    text = Peeker(str(tmp_path), 1).answer("tail")
    assert "out 499" in text and "out 0\n" not in text and "err 2" in text
    assert text.index("payload.stdout") < text.index("payload.stderr")
    assert Peeker(str(tmp_path / "nothing"), 1).answer("tail") == "(no output: the payload has not started)"


def test_ls_lists_the_tree_without_following_links(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "data.root").write_bytes(b"x" * 1234)
    (tmp_path / "out.log").write_text("hello")
    os.symlink("/etc", tmp_path / "etc-link")
    text = directory_listing(str(tmp_path))
    lines = text.splitlines()
    assert lines[0] == f"{tmp_path}: 4 entries"
    assert any(line.startswith("-rw") and line.endswith(" sub/data.root") and " 1234 " in line for line in lines)
    assert any(line.startswith("d") and line.endswith(" sub/") for line in lines)
    assert any(line.startswith("l") and line.endswith("etc-link -> /etc") for line in lines)
    assert "passwd" not in text  # /etc was not listed through the link


def test_ls_is_bounded(tmp_path):
    for n in range(50):
        (tmp_path / f"file{n:03d}").write_text("x")
    text = directory_listing(str(tmp_path), max_entries=10)
    assert text.splitlines()[0].endswith("10 entries (cut at 10)") and len(text.splitlines()) == 11


def test_ps_shows_the_payload_process_tree(tmp_path):
    payload = start_payload(["sh", "-c", "sleep 30 & sleep 31; wait"], str(tmp_path), dict(os.environ))
    try:
        deadline = time.monotonic() + 5
        while (text := process_tree(payload.pid)).count("\\_ sleep") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        lines = text.splitlines()
        assert lines[0].split() == ["PID", "PPID", "S", "CPU(s)", "RSS(MB)", "COMMAND"]
        assert lines[1].split()[0] == str(payload.pid) and "sh -c sleep 30 & sleep 31; wait" in lines[1]
        children = [line for line in lines[2:] if "\\_ sleep" in line]
        assert len(children) == 2, text
        assert str(os.getpid()) not in [line.split()[0] for line in lines[1:]]  # not the pilot itself
    finally:
        payload.kill(1.0)
    # Killed: soon nothing is left, or only zombies waiting for init to reap them (the children may
    # still be on their way out for a moment after the group was signalled).
    deadline = time.monotonic() + 5
    while not _gone(text := process_tree(payload.pid), payload.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(text, payload.pid), text


def _gone(text, pid):
    if text == f"no process of the payload (pid {pid}) is left: it has ended":
        return True
    return all(line.split()[2] == "Z" for line in text.splitlines()[1:])


@pytest.mark.parametrize("kind", ["gdb", "tail -n 5 /etc/passwd", "rm -rf .", "", "du"])
def test_anything_else_is_explained_not_run(tmp_path, kind):
    canary = tmp_path / "canary"
    canary.write_text("still here")
    text = Peeker(str(tmp_path), 1).answer(kind)
    assert "it answers tail, ls, ps only" in text
    assert canary.read_text() == "still here"


def test_answers_are_bounded(tmp_path):
    (tmp_path / "payload.stdout").write_text(("z" * 2000 + "\n") * 100)
    text = Peeker(str(tmp_path), 1).answer("tail")
    assert len(text) <= ANSWER_LIMIT and text.startswith("[... cut")
    assert len(Peeker(str(tmp_path), 1).stdout_tail()) <= ANSWER_LIMIT


def test_a_failing_look_is_reported_as_text(tmp_path, monkeypatch):
    monkeypatch.setattr("pilot.peek.process_tree", lambda pid: 1 / 0)
    assert Peeker(str(tmp_path), 1).answer("ps") == "peek ps failed on the pilot: ZeroDivisionError: division by zero"


# -- what the answers say ----------------------------------------------------------------------------


def test_server_control_parses_answers():
    control = ServerControl()
    control.update({"peek": '[{"id": 3, "kind": "ls"}]', "peekInterval": "5"}, ["debug"])  # URL-encoded form
    assert (control.debug, control.poll_interval, control.answer_now()) == (True, 5.0, True)
    assert control.take_peeks() == {3: "ls"} and not control.answer_now()
    control.update({"peek": [{"id": "x"}, "junk", {"id": 4, "kind": "ps"}], "peekInterval": -1}, [])
    assert (control.debug, control.poll_interval, control.take_peeks()) == (False, None, {4: "ps"})
    control.update({"peek": "not json"}, ["debug", "debugoff"])
    assert (control.debug, control.take_peeks()) == (False, {})


# -- through heartbeats --------------------------------------------------------------------------------


def test_a_peek_is_answered_right_after_the_heartbeat_that_brought_it(stub_server, dirs):
    dispatcher = FakeDispatcher(stub_server, [job_answer(transformation=SLEEPER, outFiles="")])
    asked = []

    def update(request):
        status, answer = dispatcher.update_job(request)
        form = request.form
        if "peekAnswers" in form:
            answers = json.loads(form["peekAnswers"])
            asked.append((time.monotonic(), answers))
            return 200, {**answer, "command": "tobekilled"}  # done: end the job
        if form["state"] == "running" and dispatcher.states.count("running") == 2:
            asked.append((time.monotonic(), None))
            return 200, {**answer, "peek": [{"id": 7, "kind": "tail"}, {"id": 8, "kind": "ps"}], "peekInterval": 5}
        return status, answer

    stub_server.routes["/server/panda/updateJob"] = update

    make_pilot(stub_server, dirs, heartbeat=0.5).run()

    (asked_at, _), (answered_at, answers) = asked
    assert answered_at - asked_at < 0.4  # not a heartbeat later: at once
    assert "step 1" in answers["7"] and "warming up" in answers["7"]
    assert "sleep 30" in answers["8"] and "PID" in answers["8"]


def test_peek_interval_shortens_the_heartbeat(stub_server, dirs):
    dispatcher = FakeDispatcher(stub_server, [job_answer(transformation=SLEEPER, outFiles="")])

    def update(request):
        status, answer = dispatcher.update_job(request)
        if dispatcher.states.count("running") >= 4:
            return 200, {**answer, "command": "tobekilled"}
        return 200, {**answer, "peekInterval": 0.2}

    stub_server.routes["/server/panda/updateJob"] = update
    started = time.monotonic()

    make_pilot(stub_server, dirs, heartbeat=60).run()

    assert time.monotonic() - started < 5  # four heartbeats, not four minutes
    assert dispatcher.final["pilotErrorCode"] == "1144"


def test_debug_mode_heartbeats_faster_with_the_stdout_tail(stub_server, dirs):
    dispatcher = FakeDispatcher(stub_server, [job_answer(transformation=SLEEPER, outFiles="")],
                                command=lambda form: "debug")  # fmt: skip
    debug_beats = []

    def update(request):
        if request.form["state"] == "running" and "stdout" in request.form:
            debug_beats.append(request.form["stdout"])
            if len(debug_beats) == 2:
                dispatcher.command = lambda form: "tobekilled"
        return dispatcher.update_job(request)

    stub_server.routes["/server/panda/updateJob"] = update
    started = time.monotonic()

    make_pilot(stub_server, dirs, heartbeat=60, debug_heartbeat=0.3).run()

    assert time.monotonic() - started < 5
    assert debug_beats[0] == "step 1"  # stdout only, not stderr
    assert dispatcher.final["pilotErrorCode"] == "1144"


def test_turning_debug_off_returns_to_the_normal_heartbeat(stub_server, dirs):
    dispatcher = FakeDispatcher(stub_server, [job_answer(transformation="/bin/sleep", jobPars="2", outFiles="")],
                                command=lambda form: "debug")  # fmt: skip

    def update(request):
        if dispatcher.states.count("running") >= 1:
            dispatcher.command = lambda form: "NULL"  # debug off from the first heartbeat on
        return dispatcher.update_job(request)

    stub_server.routes["/server/panda/updateJob"] = update

    make_pilot(stub_server, dirs, heartbeat=60, debug_heartbeat=0.3).run()

    running = [form for form in dispatcher.updates if form["state"] == "running"]
    assert len(running) == 2 and dispatcher.final["state"] == "finished"  # no more 0.3 s beats


def test_kill_is_obeyed_within_one_heartbeat(stub_server, dirs):
    kill_sent = []

    def command(form):
        if form["state"] == "running" and dispatcher.states.count("running") == 2:
            kill_sent.append(time.monotonic())
            return "tobekilled"
        return "NULL"

    dispatcher = FakeDispatcher(stub_server, [job_answer(transformation="/bin/sleep", jobPars="30", outFiles="")],
                                command=command)  # fmt: skip
    make_pilot(stub_server, dirs, heartbeat=1.0).run()

    final_at = time.monotonic()
    assert dispatcher.final["pilotErrorCode"] == "1144"
    assert final_at - kill_sent[0] < 1.0 + 1.0  # kill grace of make_pilot is 1 s; sleep dies at SIGTERM


def test_ps_of_a_payload_that_is_gone():
    assert process_tree(4_194_000) == "no process of the payload (pid 4194000) is left: it has ended"

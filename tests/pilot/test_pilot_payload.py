"""The payload runner, for real: subprocesses, rusage, process-group kills."""

import os
import signal
import sys
import threading
import time

import pytest

from pilot import errors
from pilot.errors import PilotFailure
from pilot.payload import KillSwitch, combined_output_tail, last_stderr_line, payload_environment, start_payload


def run(command, workdir, kill_switch=None, grace=1.0, environment=None):
    payload = start_payload(command, str(workdir), environment or dict(os.environ))
    return payload.wait(kill_switch or KillSwitch(), grace, poll_interval=0.05)


def process_is_gone(pid, timeout=2.0):
    """Dead, or a zombie waiting for its new parent to reap it. Signals are
    delivered asynchronously, so give the process a moment to die."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def wait_for_file(path, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and open(path).read().strip():
            return open(path).read().strip()
        time.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


def test_exit_code_and_output_capture(tmp_path):
    result = run(["sh", "-c", "echo hello; echo oops >&2; echo last words >&2; exit 3"], tmp_path)

    assert result.exit_code == 3
    assert result.shell_exit_code == 3
    assert result.term_signal is None
    assert not result.killed_by_pilot
    assert (tmp_path / "payload.stdout").read_text() == "hello\n"
    assert last_stderr_line(str(tmp_path)) == "last words"
    assert result.end_time >= result.start_time


def test_success_exit_code(tmp_path):
    assert run(["true"], tmp_path).exit_code == 0


def test_rusage_of_the_payload(tmp_path):
    burn = (
        "import time\n"
        "block = bytearray(300 * 1024 * 1024)\n"
        "for i in range(0, len(block), 4096): block[i] = 1\n"
        "end = time.process_time() + 0.3\n"
        "while time.process_time() < end: pass\n"
    )
    idle = run(["true"], tmp_path)
    result = run([sys.executable, "-c", burn], tmp_path)

    assert result.exit_code == 0
    assert 0.25 <= result.cpu_seconds < 5
    # Linux counts the forking pilot's RSS until exec as a floor under
    # ru_maxrss (here: the pytest process), so the payload must rise above it.
    assert idle.max_rss_kb < 250 * 1024
    assert result.max_rss_kb >= 290 * 1024


def test_usage_so_far_sees_a_running_payload(tmp_path):
    payload = start_payload([sys.executable, "-c", "import time\nwhile True: pass"], str(tmp_path), dict(os.environ))
    try:
        time.sleep(0.5)
        cpu_seconds, peak_rss_kb = payload.usage_so_far()
        assert cpu_seconds > 0.1
        assert peak_rss_kb > 1000
    finally:
        payload.kill(grace=1.0)


def test_kill_reaches_the_whole_process_group(tmp_path):
    # The payload starts a background child, then waits for it.
    script = "sleep 30 & echo $! > child.pid; wait"
    kill_switch = KillSwitch()
    threading.Timer(0.3, kill_switch.trigger, (errors.PANDAKILL, "killed by server")).start()
    started = time.monotonic()

    result = run(["sh", "-c", script], tmp_path, kill_switch, grace=3.0)

    assert time.monotonic() - started < 2.5  # SIGTERM was enough, no grace period wait
    assert result.killed_by_pilot
    assert result.term_signal == signal.SIGTERM
    assert result.shell_exit_code == 128 + signal.SIGTERM
    child_pid = int(wait_for_file(tmp_path / "child.pid"))
    assert process_is_gone(child_pid)


def test_sigkill_after_grace_when_sigterm_is_ignored(tmp_path):
    # Ignored signals stay ignored across exec, so `sleep` ignores it too.
    script = "trap '' TERM; sleep 30 & echo $! > child.pid; wait; sleep 30"
    kill_switch = KillSwitch()
    payload = start_payload(["sh", "-c", script], str(tmp_path), dict(os.environ))
    child_pid = int(wait_for_file(tmp_path / "child.pid"))
    kill_switch.trigger(errors.PANDAKILL, "killed by server")
    started = time.monotonic()

    result = payload.wait(kill_switch, grace=0.5, poll_interval=0.05)

    assert 0.5 <= time.monotonic() - started < 2.5
    assert result.term_signal == signal.SIGKILL
    assert process_is_gone(child_pid)


def test_background_leftovers_are_killed_after_normal_exit(tmp_path):
    result = run(["sh", "-c", "sleep 30 & echo $! > child.pid; exit 0"], tmp_path)

    assert result.exit_code == 0
    assert process_is_gone(int((tmp_path / "child.pid").read_text()))


def test_payload_dying_of_a_signal(tmp_path):
    result = run(["sh", "-c", "kill -SEGV $$"], tmp_path)

    assert result.term_signal == signal.SIGSEGV
    assert not result.killed_by_pilot
    assert errors.payload_signal_error_code(result.term_signal) == errors.PAYLOADSIGSEGV


def test_missing_executable_is_transform_not_found(tmp_path):
    with pytest.raises(PilotFailure) as failure:
        start_payload(["/no/such/trf"], str(tmp_path), dict(os.environ))
    assert failure.value.code == errors.TRANSFORMNOTFOUND


def test_non_executable_file_is_payload_execution_failure(tmp_path):
    script = tmp_path / "not_executable"
    script.write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(PilotFailure) as failure:
        start_payload([str(script)], str(tmp_path), dict(os.environ))
    assert failure.value.code == errors.PAYLOADEXECUTIONFAILURE


def test_environment_has_panda_variables_but_not_the_token(tmp_path, monkeypatch):
    monkeypatch.setenv("PANDA_PILOT_TOKEN", "s3cret")
    environment = payload_environment({"PANDAID": "42", "PANDA_SITE": "SITE_A"})

    run(["sh", "-c", "echo $PANDAID $PANDA_SITE token=$PANDA_PILOT_TOKEN"], tmp_path, environment=environment)

    assert (tmp_path / "payload.stdout").read_text() == "42 SITE_A token=\n"


def test_pilot_log_tail_keeps_both_streams(tmp_path):
    (tmp_path / "payload.stdout").write_text("".join(f"out {i}\n" for i in range(500)))
    (tmp_path / "payload.stderr").write_text("".join(f"err {i}\n" for i in range(500)))

    lines = combined_output_tail(str(tmp_path), max_lines=200).splitlines()

    assert len(lines) == 202  # 200 lines plus the two headers
    assert "out 499" in lines and "err 499" in lines
    assert "out 399" not in lines

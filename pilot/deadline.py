"""Run one file transfer on a thread of its own, with a deadline.

Storage can hang: an HTTP server that accepts the connection and never
answers, an NFS mount that stopped responding. A read blocked in the kernel
cannot be interrupted from Python, so the transfer runs on a daemon thread
and the pilot only waits for it until the deadline. Then it sets the
transfer's cancel event (movers check it between chunks and never rename a
cancelled file into place) and goes on to fail the job; a thread still stuck
in a system call is abandoned, and dies with its socket timeout or with the
pilot.
"""

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

POLL_INTERVAL = 0.1  # how quickly a stop request (signal, server kill) is noticed


class TransferTimeout(Exception):
    """The transfer did not end before its deadline."""


class TransferInterrupted(Exception):
    """The job was told to stop (kill switch) while the transfer ran."""


class _Outcome:
    def __init__(self):
        self.value = None
        self.error: BaseException | None = None
        self.done = threading.Event()


def run_with_deadline(work: Callable[[threading.Event], T], timeout: float, name: str, interrupt=None) -> T:
    """Return work(cancel) if it ends within `timeout` seconds.

    Raises what `work` raised, TransferTimeout after the deadline, or
    TransferInterrupted when `interrupt` (anything with is_set(), such as
    the job's KillSwitch) gets set while the transfer runs. In both cases
    `cancel` is set. A stop requested before the transfer began does not
    count: that is how a killed job still stages out its log.
    """
    if interrupt is not None and interrupt.is_set():
        interrupt = None
    cancel = threading.Event()
    outcome = _Outcome()
    thread = threading.Thread(target=_run, args=(work, cancel, outcome), name=name, daemon=True)
    thread.start()
    _wait(outcome, cancel, time.monotonic() + timeout, timeout, interrupt)
    if outcome.error is not None:
        raise outcome.error
    return outcome.value


def _run(work, cancel: threading.Event, outcome: _Outcome) -> None:
    try:
        outcome.value = work(cancel)
    except BaseException as exc:  # noqa: BLE001 - re-raised in the waiting thread
        outcome.error = exc
    finally:
        outcome.done.set()


def _wait(outcome: _Outcome, cancel: threading.Event, deadline: float, timeout: float, interrupt) -> None:
    while not outcome.done.is_set():
        if interrupt is not None and interrupt.is_set():
            cancel.set()
            raise TransferInterrupted("the job was stopped during the transfer")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            cancel.set()
            raise TransferTimeout(f"timed out after {timeout:g} s")
        outcome.done.wait(min(remaining, POLL_INTERVAL))

"""The looping-job killer (pilot3's pilot/util/loopingjob.py).

A payload that has changed nothing in its work directory for `limit` seconds (default 7200,
PanDA's looping_limit_default) is taken for stuck and killed through the job's KillSwitch; the
job then fails with pilot error 1150. A job sent with `loopingCheck=False` (its task asked for
no looping check) is never killed this way.

The check is cheap: every check_interval seconds it walks the work directory breadth-first,
lstat only (symlinks are not followed), and stops after MAX_ENTRIES entries. A walk cut short
never kills: files it did not see may be the ones the payload writes. The pilot's own files
(its log copy, its state file) and the top directory's own time stamp do not count: they
change while the payload sits still.
"""

import logging
import os
import threading
import time
from collections import deque

from pilot import errors
from pilot.jobstate import STATE_NAME
from pilot.payload import KillSwitch

logger = logging.getLogger(__name__)

MAX_ENTRIES = 100_000
MAX_CHECK_INTERVAL = 600.0  # pilot3 looks every 10 minutes (looping_verification_time)
MIN_CHECK_INTERVAL = 0.5
PILOT_LOG_NAME = "pilot.log"  # pilot/jobrun.py's copy of the pilot's log lines in the work directory


def is_pilot_file(name: str) -> bool:
    # The state file is rewritten through temporary names (pilot_state.json.<hex>.tmp).
    return name == PILOT_LOG_NAME or name.startswith(STATE_NAME)


def newest_mtime(workdir: str, max_entries: int = MAX_ENTRIES) -> tuple[float, bool]:
    """(newest modification time below `workdir`, complete): 0.0 for an empty tree;
    complete is False when the walk stopped at `max_entries`."""
    newest = 0.0
    seen = 0
    queue = deque([(workdir, True)])
    while queue:
        path, top = queue.popleft()
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    seen += 1
                    if seen > max_entries:
                        return newest, False
                    if top and is_pilot_file(entry.name):
                        continue
                    try:
                        status = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue  # removed while we looked: the payload is busy, the next look sees it
                    newest = max(newest, status.st_mtime)
                    if entry.is_dir(follow_symlinks=False):
                        queue.append((entry.path, False))
        except OSError:
            continue
    return newest, True


def check_interval_for(limit: float) -> float:
    """A tenth of the limit, within [0.5 s, 10 min]: the kill comes at most 10 % late."""
    return min(MAX_CHECK_INTERVAL, max(MIN_CHECK_INTERVAL, limit / 10))


def looping_diag(idle: float, limit: float) -> str:
    return (
        f"Looping job killed by pilot: no file in the work directory was changed for {idle:.0f} s "
        f"(looping limit {limit:.0f} s)"
    )


class LoopingMonitor(threading.Thread):
    """Watches a job's work directory while its payload runs; fires the KillSwitch when it idles."""

    def __init__(
        self,
        workdir: str,
        limit: float,
        kill_switch: KillSwitch,
        check_interval: float | None = None,
        clock=time.time,  # wall time, like the modification times it is compared with
    ):
        super().__init__(name="looping-monitor", daemon=True)
        self.workdir = workdir
        self.limit = limit
        self.check_interval = check_interval or check_interval_for(limit)
        self._kill_switch = kill_switch
        self._clock = clock
        # The payload's start counts as activity: a payload that never writes anything is killed
        # `limit` seconds after it started.
        self.last_activity = clock()
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.wait(self.check_interval):
            if self._kill_switch.is_set():
                return
            try:
                if self.check():
                    return
            except Exception:  # a broken monitor must never take the job down with it
                logger.exception("looping check failed")

    def check(self) -> bool:
        """One look; True (and the KillSwitch fired) when the job is looping."""
        newest, complete = newest_mtime(self.workdir)
        self.last_activity = max(self.last_activity, newest)
        idle = self._clock() - self.last_activity
        if idle < self.limit:
            return False
        if not complete:
            logger.warning("work directory %s has over %d entries: looping check inconclusive", self.workdir,
                           MAX_ENTRIES)  # fmt: skip
            return False
        diag = looping_diag(idle, self.limit)
        logger.warning("%s: killing the payload", diag)
        self._kill_switch.trigger(errors.LOOPINGJOB, diag)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join(timeout)


def looping_check_enabled(job) -> bool:
    """False when the dispatcher sent `loopingCheck=False` (the job's task disabled the check)."""
    return job.looping_check

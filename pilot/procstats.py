"""Resource use of a still-running payload, read from /proc (Linux).

getrusage/wait4 only report a child once it has exited; heartbeats want the
figures so far, so we add up the processes of the payload's process group.
"""

import os

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            text = stat_file.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses; the
    # fields we need all come after its closing parenthesis.
    return text[text.rfind(")") + 2 :].split()


def _peak_rss_kb(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as status_file:
            for line in status_file:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def process_group_usage(pgid: int) -> tuple[float, int] | None:
    """(CPU seconds, peak RSS kB) of the processes in group `pgid`.

    CPU adds user+system time of each member and of the children it has
    reaped. Peak RSS is the largest single process's high-water mark, the
    same meaning as ru_maxrss in the final report. None off Linux.
    """
    if not os.path.isdir("/proc"):
        return None
    cpu_ticks = 0
    peak_rss_kb = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(entry.name)
        # after the name: state ppid pgrp ... utime(12) stime cutime cstime
        if not fields or len(fields) < 15 or fields[2] != str(pgid):
            continue
        cpu_ticks += sum(int(value) for value in fields[11:15])
        peak_rss_kb = max(peak_rss_kb, _peak_rss_kb(entry.name))
    return cpu_ticks / _CLOCK_TICKS, peak_rss_kb

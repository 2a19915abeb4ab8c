"""What the machine is and where its CPU went during a measurement (read from /proc, Linux only)."""

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def cores():
    return len(os.sched_getaffinity(0))


def _cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_lines(pg_version, pg_settings):
    memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    settings = ", ".join(f"{name}={value}" for name, value in pg_settings)
    return [
        f"machine: {cores()} cores (nproc), {_cpu_model()}, {memory_kb / 1024 / 1024:.1f} GiB RAM, {platform.platform()}",
        f"database: {pg_version}",
        f"postgres settings: {settings}",
    ]


def background_busy(seconds=2.0):
    """Percent of one core the machine is busy with while the bench itself is idle (others' load)."""

    def ticks():
        values = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return sum(values) - values[3] - values[4], sum(values)

    busy0, total0 = ticks()
    time.sleep(seconds)
    busy1, total1 = ticks()
    return 100.0 * cores() * (busy1 - busy0) / max(1, total1 - total0)


def _process_ticks(pid):
    """utime + stime of one process, 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return int(fields[11]) + int(fields[12])


def _children(pid):
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


@dataclass
class CpuSnapshot:
    busy: int
    total: int
    gunicorn: dict  # pid -> ticks
    postgres: dict


def cpu_snapshot(gunicorn_pid, postgres_pids):
    """Machine-wide busy/total ticks, and the ticks of gunicorn (master + workers) and of `postgres_pids`."""
    values = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return CpuSnapshot(
        busy=sum(values) - idle,
        total=sum(values),
        gunicorn={pid: _process_ticks(pid) for pid in [gunicorn_pid, *_children(gunicorn_pid)]},
        postgres={pid: _process_ticks(pid) for pid in postgres_pids},
    )


def _ticks_used(before, after):
    # Per pid, so processes that exit or appear in between do not turn the sum negative.
    return sum(ticks - before.get(pid, 0) for pid, ticks in after.items())


def cpu_usage(before, after, wall_seconds, load_cpu_seconds):
    """Percent of one core used by each party (100 = one core busy); `other` is what else ran on the machine."""

    def percent(ticks):
        return 100.0 * ticks / TICKS / wall_seconds

    usage = {
        "gunicorn": percent(_ticks_used(before.gunicorn, after.gunicorn)),
        "postgres": percent(_ticks_used(before.postgres, after.postgres)),
        "load": 100.0 * load_cpu_seconds / wall_seconds,
    }
    machine = 100.0 * cores() * (after.busy - before.busy) / max(1, after.total - before.total)
    usage["other"] = max(0.0, machine - sum(usage.values()))
    return usage

"""What the worker node offers, in the units getJob expects."""

import shutil


def memory_mb(meminfo_path: str = "/proc/meminfo") -> int:
    """MemTotal in MB (0 if unknown, e.g. off Linux)."""
    try:
        with open(meminfo_path) as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024  # the file says kB
    except (OSError, ValueError, IndexError):
        pass
    return 0


def free_disk_mb(path: str) -> int:
    try:
        return shutil.disk_usage(path).free // (1024 * 1024)
    except OSError:
        return 0


def cpu_mhz(cpuinfo_path: str = "/proc/cpuinfo") -> int:
    """Clock speed of the first CPU, like pilot3's `cpu` field (0 if unknown)."""
    try:
        with open(cpuinfo_path) as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("cpu mhz"):
                    return int(float(line.split(":", 1)[1]))
    except (OSError, ValueError, IndexError):
        pass
    return 0

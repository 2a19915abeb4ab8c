"""Per-file progress on stderr: a live bar on a terminal, one line per file otherwise.

Logs and pipes get exactly one line per file (no carriage returns to garble
them); a terminal also gets a bar redrawn at most ten times a second.
"""

import shutil
import sys
import time

REDRAW_INTERVAL = 0.1
BAR_WIDTH = 24


def human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # not reached


class Reporter:
    def __init__(self, stream=None, tty: bool | None = None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty

    def start(self, name: str, total: int) -> "FileProgress":
        return FileProgress(self, name, total)

    def line(self, text: str) -> None:
        self.stream.write(("\r\033[K" if self.tty else "") + text + "\n")
        self.stream.flush()


class FileProgress:
    """Called with each chunk's byte count while one file moves."""

    def __init__(self, reporter: Reporter, name: str, total: int):
        self.reporter = reporter
        self.name = name
        self.total = total
        self.done_bytes = 0
        self.started = time.monotonic()
        self._drawn = 0.0

    def __call__(self, n: int) -> None:
        self.done_bytes += n
        now = time.monotonic()
        if self.reporter.tty and now - self._drawn >= REDRAW_INTERVAL:
            self._drawn = now
            self._draw(now)

    def restart(self) -> None:
        """A new try from another place: count from zero again."""
        self.done_bytes = 0
        self.started = time.monotonic()

    def finish(self, outcome: str) -> None:
        self.reporter.line(f"{self.name}: {outcome}")

    def rate(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        return f"{human_size(self.done_bytes / elapsed)}/s"

    def _draw(self, now: float) -> None:
        fraction = min(1.0, self.done_bytes / self.total) if self.total else 1.0
        filled = int(fraction * BAR_WIDTH)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        tail = f" [{bar}] {fraction:4.0%} {human_size(self.done_bytes)} {self.rate()}"
        width = shutil.get_terminal_size((80, 24)).columns
        room = max(12, width - len(tail) - 4)  # a long LFN is cut at the front: its end tells files apart
        name = self.name if len(self.name) <= room else "..." + self.name[-room:]
        self.reporter.stream.write("\r\033[K" + name + tail)
        self.reporter.stream.flush()

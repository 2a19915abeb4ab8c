"""Peeks: the three fixed, read-only looks a pilot gives at its running job (docs/job-control.md).

The server's request only names one of KINDS; each is Python code here that reads files and
/proc. Nothing the server sends is ever executed or used as a path: pilot3 runs `tail`/`ls`/`ps`
command lines from the server, this pilot does not. Every answer is bounded (ANSWER_LIMIT).
"""

import logging
import os
import stat
from collections import deque
from datetime import UTC, datetime

from pilot.payload import STDOUT_NAME, combined_output_tail, tail_lines

logger = logging.getLogger(__name__)

KINDS = ("tail", "ls", "ps")
ANSWER_LIMIT = 60 * 1024  # below the server's 64 KB, so nothing is cut twice
TAIL_LINES = 100
DEBUG_TAIL_LINES = 100
LS_MAX_ENTRIES = 500
LS_MAX_DEPTH = 4
CMDLINE_LIMIT = 300
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024 if hasattr(os, "sysconf") else 4
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def bounded(text: str) -> str:
    if len(text) <= ANSWER_LIMIT:
        return text
    note = "[... cut: only the end is sent]\n"
    return note + text[-(ANSWER_LIMIT - len(note)) :]


class Peeker:
    """Answers peeks about one running payload (its work directory and process)."""

    def __init__(self, workdir: str, payload_pid: int):
        self.workdir = workdir
        self.payload_pid = payload_pid

    def answer(self, kind: str) -> str:
        """The text for a request of `kind`; an unknown kind gets an explanation, nothing else."""
        actions = {"tail": self.tail, "ls": self.listing, "ps": self.processes}
        action = actions.get(kind)
        if action is None:
            return f"this pilot does not answer {str(kind)[:20]!r}: it answers {', '.join(KINDS)} only"
        try:
            return bounded(action())
        except Exception as exc:  # a failed look must not stop the heartbeat
            logger.exception("peek %s failed", kind)
            return f"peek {kind} failed on the pilot: {type(exc).__name__}: {exc}"

    def tail(self) -> str:
        """The last lines of the payload's stdout and stderr."""
        return combined_output_tail(self.workdir, TAIL_LINES) or "(no output: the payload has not started)"

    def stdout_tail(self) -> str:
        """Debug mode's `stdout` field: the end of the payload's stdout (pilot3 sends the same)."""
        return bounded("\n".join(tail_lines(os.path.join(self.workdir, STDOUT_NAME), DEBUG_TAIL_LINES)))

    def listing(self) -> str:
        return directory_listing(self.workdir)

    def processes(self) -> str:
        return process_tree(self.payload_pid)


def directory_listing(workdir: str, max_entries: int = LS_MAX_ENTRIES, max_depth: int = LS_MAX_DEPTH) -> str:
    """`ls -lR`-like lines (mode, size, UTC modification time, path), breadth-first and bounded."""
    lines = []
    queue = deque([("", 0)])
    cut = False
    while queue and not cut:
        relative, depth = queue.popleft()
        try:
            with os.scandir(os.path.join(workdir, relative)) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError as exc:
            lines.append(f"{relative or '.'}: cannot list: {exc.strerror}")
            continue
        for entry in entries:
            if len(lines) >= max_entries:
                cut = True
                break
            path = os.path.join(relative, entry.name)
            lines.append(_listing_line(entry, path))
            if entry.is_dir(follow_symlinks=False) and depth + 1 < max_depth:
                queue.append((path, depth + 1))
    header = f"{workdir}: {len(lines)} entries" + (f" (cut at {max_entries})" if cut else "")
    return "\n".join([header, *lines])


def _listing_line(entry: os.DirEntry, path: str) -> str:
    try:
        status = entry.stat(follow_symlinks=False)
    except OSError:
        return f"?????????? {'?':>12} {'?':19} {path} (gone)"
    when = datetime.fromtimestamp(status.st_mtime, UTC).strftime("%Y-%m-%d %H:%M:%S")
    line = f"{stat.filemode(status.st_mode)} {status.st_size:>12} {when} {path}"
    if stat.S_ISDIR(status.st_mode):
        return line + "/"
    if stat.S_ISLNK(status.st_mode):
        try:
            return f"{line} -> {os.readlink(entry.path)}"
        except OSError:
            return line
    return line


def _read_process(pid: str) -> dict | None:
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            text = stat_file.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    name = text[text.find("(") + 1 : text.rfind(")")]
    fields = text[text.rfind(")") + 2 :].split()
    if len(fields) < 22:
        return None
    return {
        "pid": int(pid),
        "state": fields[0],
        "ppid": int(fields[1]),
        "session": int(fields[3]),
        "cpu_s": (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS,
        "rss_mb": int(fields[21]) * _PAGE_KB / 1024,
        "command": _command_line(pid) or f"[{name}]",
    }


def _command_line(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            raw = cmdline.read(CMDLINE_LIMIT + 1)
    except OSError:
        return ""
    text = raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()
    return text[:CMDLINE_LIMIT] + ("..." if len(raw) > CMDLINE_LIMIT else "")


def payload_processes(payload_pid: int) -> list[dict]:
    """The payload's processes: its session (it was started in a new one) and anything descending from it."""
    processes = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            info = _read_process(entry.name)
            if info:
                processes[info["pid"]] = info
    members = {pid for pid, info in processes.items() if info["session"] == payload_pid or pid == payload_pid}
    grew = True
    while grew:  # children that left the session (setsid) still belong to the payload
        more = {pid for pid, info in processes.items() if info["ppid"] in members} - members
        members |= more
        grew = bool(more)
    return [processes[pid] for pid in sorted(members)]


def process_tree(payload_pid: int) -> str:
    """`ps`-like lines of the payload's processes, children indented under their parent."""
    if not os.path.isdir("/proc"):
        return "no process list: this node has no /proc"
    members = payload_processes(payload_pid)
    if not members:
        return f"no process of the payload (pid {payload_pid}) is left: it has ended"
    pids = {info["pid"] for info in members}
    children = {}
    for info in members:
        parent = info["ppid"] if info["ppid"] in pids else None
        children.setdefault(parent, []).append(info)
    lines = [f"{'PID':>7} {'PPID':>7} S {'CPU(s)':>9} {'RSS(MB)':>9} COMMAND"]

    def add(parent, depth):
        for info in children.get(parent, []):
            indent = "  " * depth + ("\\_ " if depth else "")
            lines.append(f"{info['pid']:>7} {info['ppid']:>7} {info['state']} {info['cpu_s']:>9.2f} "
                         f"{info['rss_mb']:>9.1f} {indent}{info['command']}")  # fmt: skip
            add(info["pid"], depth + 1)

    add(None, 0)
    return "\n".join(lines)

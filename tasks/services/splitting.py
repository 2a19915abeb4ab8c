"""Splitting a task's input into jobs, and the job parameter template.

Pure functions (no database): the creation service hands them the input pieces and
the task's rule, and gets back the jobs' pieces.

- by files:   n_files_per_job files per job;
- by events:  n_events_per_job events per job *within* files (sub-file partitioning):
              a 10,000-event file with 1,000 events per job gives 10 jobs, each with its
              first event; a job never spans two files;
- by size:    as many files as fit in max_size_per_job_mb (at least one per job).
"""

import re
from dataclasses import dataclass

from pandamon.errors import InvalidInput

PLACEHOLDER = re.compile(r"\$\{([A-Z]+)\}")
KNOWN = {"IN", "OUT", "SN", "FIRSTEVENT", "SKIPEVENTS", "MAXEVENTS"}


@dataclass(frozen=True)
class Piece:
    """A file, or the events [first_event, first_event + n_events) of it."""

    lfn: str
    fsize: int
    first_event: int = 0
    n_events: int | None = None


def pieces_of(files, *, n_events_per_job=None, events_per_file=None):
    """The task's input pieces: whole files, or event ranges when jobs take events within files.

    files: [(lfn, fsize, events or None)], in order.
    """
    if not n_events_per_job:
        return [Piece(lfn, fsize, 0, events) for lfn, fsize, events in files]
    pieces = []
    for lfn, fsize, events in files:
        total = events or events_per_file
        if not total:
            raise InvalidInput(f"file {lfn} does not say how many events it holds: give events_per_file")
        for first in range(0, total, n_events_per_job):
            pieces.append(Piece(lfn, fsize, first, min(n_events_per_job, total - first)))
    return pieces


def split(pieces, *, n_files_per_job=None, n_events_per_job=None, max_size_per_job_mb=None):
    """Group pieces into jobs (lists of pieces) by the task's rule."""
    if n_events_per_job:
        return [[piece] for piece in pieces]  # one event range per job
    if max_size_per_job_mb:
        return _by_size(pieces, max_size_per_job_mb * 1024 * 1024)
    per_job = n_files_per_job or 1
    return [pieces[start : start + per_job] for start in range(0, len(pieces), per_job)]


def _by_size(pieces, limit):
    jobs, current, size = [], [], 0
    for piece in pieces:
        if current and size + piece.fsize > limit:
            jobs.append(current)
            current, size = [], 0
        current.append(piece)
        size += piece.fsize
    if current:
        jobs.append(current)
    return jobs


def check_template(template):
    """Refuse unknown ${...} names at submission, not when the job runs."""
    unknown = sorted(set(PLACEHOLDER.findall(template or "")) - KNOWN)
    if unknown:
        raise InvalidInput(f"job parameters: unknown placeholder ${{{unknown[0]}}}; known: {', '.join(sorted(KNOWN))}")


def expand(template, *, inputs, outputs, serial, first_event=0, n_events=None):
    """The job's parameters: the template with its placeholders filled in."""
    values = {
        "IN": ",".join(inputs), "OUT": ",".join(outputs), "SN": f"{serial:06d}",
        "FIRSTEVENT": str(first_event + 1), "SKIPEVENTS": str(first_event),
        "MAXEVENTS": str(n_events if n_events is not None else -1),
    }  # fmt: skip
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], template or "")

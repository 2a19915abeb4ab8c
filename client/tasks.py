"""panda submit / tasks / task: analysis tasks from the command line (standard library only).

`panda submit` puts the user's code into the server's script cache (the script itself,
or a tarball of --workDir) and submits an analysis task whose transformation is the
cached file's URL; the pilot downloads it with its credential and runs it in the job's
work directory with the job parameters (the script's arguments, ${IN} ${OUT} ${SN} ...
filled in per job). Submitting again with the same --outDS processes only the input
files the task has not seen yet.
"""

import argparse
import gzip
import io
import json
import os
import re
import shlex
import tarfile
import urllib.parse
from pathlib import Path

from client import config
from client.api import Catalog
from client.cli import parse_filters
from client.errors import UsageError

CACHE_PATH = "/api/v1/cache/"
TASKS_PATH = "/api/v1/tasks/"
MB = 1024 * 1024
SAFE_ARGUMENT = re.compile(r"^(?:\$\{[A-Z]+\}|[\w@%+=:,./-])+$", re.ASCII)

SUBMIT_EPILOG = """\
The script runs in the job's work directory, next to its input files, as
    script.sh ARGS...
with these placeholders in ARGS filled in per job (quote them for your shell):
    ${IN}  the job's input files, comma-separated     ${OUT}  its output files, comma-separated
    ${SN}  the job's serial number (000001, ...)      ${FIRSTEVENT} ${SKIPEVENTS} ${MAXEVENTS}  its events
Without --workDir the script alone is uploaded (it must start with #!); with --workDir the
directory is uploaded as a tarball, unpacked in the job's work directory, and the script is
run from it (a name that is not in the directory is taken as a program on the worker).

Running the same command again with the same --outDS is a resubmission: only input files
the task has not processed yet get jobs (new files added to --inDS since), nothing runs twice.

example:
    panda submit --inDS data11.00180164.physics_Muons.AOD --outDS user.alice.zmumu.v1 \\
        --nFilesPerJob 5 --workDir . -- ./analyse.sh '${IN}' '${OUT}'
"""


def add_commands(sub) -> None:
    """Register submit, tasks and task on the panda command's subparsers."""
    submit = sub.add_parser(
        "submit", help="run your script over a dataset: upload it and submit an analysis task",
        description="Upload your script (or --workDir) to the script cache and submit an analysis task "
                    "that runs it over the input dataset's files.",
        epilog=SUBMIT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    submit.add_argument("--inDS", required=True, metavar="DATASET", help="input dataset or container")
    submit.add_argument("--outDS", required=True, metavar="user.<you>.NAME", help="output container (the task)")
    split = submit.add_mutually_exclusive_group()
    split.add_argument("--nFilesPerJob", type=_positive_int, metavar="N", help="N input files per job (default 1)")
    split.add_argument("--nEventsPerJob", type=_positive_int, metavar="N",
                       help="N events per job: jobs take ranges of events within files")  # fmt: skip
    split.add_argument("--nGBPerJob", type=_positive_float, metavar="GB", help="as many files as fit in GB per job")
    submit.add_argument("--nEventsPerFile", type=_positive_int, metavar="N",
                        help="events in each input file, for --nEventsPerJob when the catalog does not say")  # fmt: skip
    submit.add_argument("--outputs", metavar="FMT[,FMT]", help="output formats: one output file per format and "
                        "job, ${OUT} lists them (default root)")  # fmt: skip
    submit.add_argument("--site", help="run only at this site")
    submit.add_argument("--excludedSite", metavar="S[,S...]", help="sites not to run at")
    submit.add_argument("--followInput", action="store_true",
                        help="keep making jobs for files added to --inDS later")  # fmt: skip
    submit.add_argument("--memory", type=_positive_int, metavar="MB", help="memory a job needs")
    submit.add_argument("--maxAttempt", type=_positive_int, metavar="N", help="attempts per job (default 3)")
    submit.add_argument("--workDir", metavar="DIR", help="upload DIR as a tarball and run the script from it")
    submit.add_argument("--json", action="store_true", help="print the server's JSON answer")
    submit.add_argument("run", nargs="*", metavar="-- script.sh ARGS", help="what each job runs")
    submit.set_defaults(handler=submit_task)

    tasks = sub.add_parser("tasks", help="your tasks, newest first (--all: everyone's)")
    tasks.add_argument("filters", nargs="*", metavar="FIELD=VALUE", help="e.g. taskname='user.alice.*' days=30")
    tasks.add_argument("--status", help="e.g. running, or done|finished")
    tasks.add_argument("--all", action="store_true", help="everyone's tasks, not only yours")
    tasks.add_argument("--limit", type=_positive_int, default=50)
    tasks.add_argument("--json", action="store_true")
    tasks.set_defaults(handler=list_tasks)

    task = sub.add_parser("task", help="one task: status, counters, jobs by state")
    task.add_argument("task_id", type=_positive_int, metavar="ID")
    task.add_argument("--json", action="store_true")
    task.set_defaults(handler=show_task)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def _logged_in(server: str, args) -> Catalog:
    token = config.token(args.token)
    if not token:
        raise UsageError("not logged in: run 'panda login -u <you>' or give --token")
    return Catalog(server, token=token)


# -- submit ----------------------------------------------------------------------------------


def submit_task(server: str, args) -> int:
    if not args.run:
        raise UsageError("give what each job runs after --: panda submit --inDS X --outDS Y -- script.sh ARGS")
    script, arguments = args.run[0], args.run[1:]
    payload, fragment, job_parameters = _payload(args.workDir, script, arguments)
    catalog = _logged_in(server, args)
    limit = catalog.get(CACHE_PATH).get("max_bytes")
    if limit and len(payload.data) > limit:
        raise UsageError(f"{payload.what} is {len(payload.data) / MB:.1f} MB; the server's cache takes at most "
                         f"{limit / MB:g} MB{payload.hint}")  # fmt: skip
    entry = catalog.upload(CACHE_PATH, payload.data)
    done = "uploaded" if entry.get("created") else "already in the cache:"
    print(f"{done} {payload.what} ({entry['size']:,} bytes) {entry['url']}")
    transformation = entry["url"] + (f"#{urllib.parse.quote(fragment)}" if fragment else "")
    answer = catalog.post(TASKS_PATH, _spec(args, transformation, job_parameters))
    if args.json:
        print(json.dumps(answer, indent=1))
        return 0
    task = answer["task"]
    print(answer.get("message") or f"task {task['task_id']}: {len(answer['pandaids'])} job(s)")
    if answer["pandaids"]:
        print(f"PandaIDs: {_ids(answer['pandaids'])}")
    print(f"task {task['task_id']} {task['name']}: {task['status']}  {task['url']}")
    return 0


class _Payload:
    def __init__(self, data: bytes, what: str, hint: str = ""):
        self.data, self.what, self.hint = data, what, hint


def _payload(workdir: str | None, script: str, arguments: list[str]):
    """(what to upload, the script inside it or None, the job parameters)."""
    if workdir:
        root = Path(workdir)
        if not root.is_dir():
            raise UsageError(f"--workDir {workdir}: not a directory")
        payload = _Payload(tarball(root), f"the tarball of {workdir}", ": leave big files out of --workDir")
        inside = os.path.normpath(script)
        if (root / inside).is_file() and not inside.startswith(".."):
            return payload, inside, job_parameters(arguments)
        if "/" in script:
            raise UsageError(f"{script} is not a file in --workDir {workdir}")
        print(f"note: {script} is not in {workdir}: the worker must have it on its PATH")
        return payload, None, job_parameters([script, *arguments])
    path = Path(script)
    if not path.is_file():
        raise UsageError(f"{script}: no such file (panda submit uploads your script; give --workDir to upload a "
                         f"directory and run a program from it)")  # fmt: skip
    data = path.read_bytes()
    if not data.startswith(b"#!"):
        raise UsageError(f"{script} does not start with #! (e.g. #!/bin/sh): the worker runs it as a program")
    return _Payload(data, script), None, job_parameters(arguments)


def job_parameters(arguments: list[str]) -> str:
    """The arguments as one shell-quoted line; ${IN}-style placeholders stay bare (the server fills in
    file names, which need no quoting), so `--in=${IN}` reads as written."""
    return " ".join(arg if SAFE_ARGUMENT.match(arg) else shlex.quote(arg) for arg in arguments)


def tarball(root: Path) -> bytes:
    """A gzipped tar of the directory `root`, the same bytes for the same files (so the cache keeps it once)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed:
        with tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive:
            for path in sorted(root.rglob("*")):
                if path.is_symlink() or path.is_file() or path.is_dir():
                    archive.add(path, arcname=str(path.relative_to(root)), recursive=False, filter=_plain)
    return buffer.getvalue()


def _plain(member: tarfile.TarInfo) -> tarfile.TarInfo:
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    return member


def _spec(args, transformation: str, job_parameters: str) -> dict:
    spec = {"input_dataset": args.inDS, "output_dataset": args.outDS, "transformation": transformation,
            "job_parameters": job_parameters}  # fmt: skip
    options = {
        "n_files_per_job": args.nFilesPerJob, "n_events_per_job": args.nEventsPerJob,
        "max_size_per_job_mb": max(1, round(args.nGBPerJob * 1024)) if args.nGBPerJob else None,
        "events_per_file": args.nEventsPerFile, "site": args.site, "ram_mb": args.memory,
        "max_attempts": args.maxAttempt, "follow_input": True if args.followInput else None,
        "output_formats": ".".join(f for f in args.outputs.split(",") if f) if args.outputs else None,
        "excluded_sites": [s for s in args.excludedSite.split(",") if s] if args.excludedSite else None,
    }  # fmt: skip
    spec.update({name: value for name, value in options.items() if value is not None})
    return spec


def _ids(pandaids: list[int]) -> str:
    if len(pandaids) <= 10:
        return " ".join(str(i) for i in pandaids)
    return f"{pandaids[0]} ... {pandaids[-1]} ({len(pandaids)} jobs)"


# -- tasks / task ----------------------------------------------------------------------------


def list_tasks(server: str, args) -> int:
    params = parse_filters(args.filters)
    if args.status:
        params["status"] = args.status
    if not args.all and "username" not in params:
        params["mine"] = 1
        catalog = _logged_in(server, args)
    else:
        catalog = Catalog(server, token=config.token(args.token))
    rows = catalog.get(TASKS_PATH, {**params, "limit": args.limit})["results"]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for row in rows:
        files = f"{row['files_done']}/{row['files_total']}" + (f" ({row['files_failed']} failed)"
                                                               if row["files_failed"] else "")  # fmt: skip
        print("  ".join([str(row["task_id"]), row["status"], row["type"], row["owner"], files, row["name"],
                         row["modified_at"][:16].replace("T", " ")]))  # fmt: skip
    return 0


def show_task(server: str, args) -> int:
    task = Catalog(server, token=config.token(args.token)).get(f"{TASKS_PATH}{args.task_id}/")
    if args.json:
        print(json.dumps(task, indent=1))
        return 0
    for label, value in _task_lines(task):
        print(f"{label:<15} {value}")
    return 0


def _task_lines(task: dict) -> list[tuple[str, str]]:
    reason = f"  ({task['status_reason']})" if task.get("status_reason") else ""
    to_go = task["files_total"] - task["files_done"] - task["files_failed"]
    lines = [
        ("task", f"{task['task_id']}  {task['name']}"),
        ("status", f"{task['status']}{reason}"),
        ("type", f"{task['type']}, owner {task['owner']}" + (f", group {task['working_group']}"
                                                             if task.get("working_group") else "")),  # fmt: skip
        ("input", task["input_dataset"]),
        ("output", task["output_dataset"]),
        ("transformation", task["transformation"]),
        ("parameters", task.get("job_parameters") or "-"),
        ("splitting", _splitting(task)),
        ("files", f"{task['files_total']} total: {task['files_done']} done, {task['files_failed']} failed, "
                  f"{to_go} to go"),
        ("jobs", ", ".join(f"{state} {n}" for state, n in sorted(task["jobs_by_state"].items())) or "-"),
    ]  # fmt: skip
    if task.get("events_total"):
        lines.append(("events", f"{task['events_done']:,} of {task['events_total']:,} done"))
    for jobset in task.get("jobsets", []):
        lines.append(("jobset", f"{jobset['jobset_id']}: {jobset['n_jobs']} job(s), {_when(jobset['created_at'])}"))
    for change in task.get("status_log", [])[-5:]:
        arrow = f"{change['old_status'] or '-'} -> {change['new_status']}"
        lines.append(("history", f"{_when(change['changed_at'])}  {arrow}  {change['reason']}".rstrip()))
    lines.append(("page", task["url"]))
    return lines


def _splitting(task: dict) -> str:
    if task.get("n_events_per_job"):
        return f"{task['n_events_per_job']} events per job"
    if task.get("max_size_per_job_mb"):
        return f"{task['max_size_per_job_mb']} MB of input per job"
    return f"{task.get('n_files_per_job') or 1} file(s) per job"


def _when(stamp: str) -> str:
    return stamp[:19].replace("T", " ")

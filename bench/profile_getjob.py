"""Where a getJob call spends its time: queries per call, their cost, and a cProfile of the Python side.

    cd /work/main && .venv/bin/python bench/profile_getjob.py [--calls 500 --sites 50]

Needs the data of bench/dispatch.py (run it once first). Calls go through the full
Django stack (middleware, URL routing, the view) in this one process, one after the
other, so the numbers are the cost of a call without contention.
"""

import argparse
import cProfile
import io
import pstats
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: make `bench` importable

from bench import env, fill  # noqa: E402

PATHS = {"full": "/server/panda/getJob", "bare": "/bench/bare-getjob"}
# Steps of getJob timed separately (module, attribute as the caller looks it up), inclusive of their SQL.
# Steps a server version does not have are skipped, so the profiler follows the code as it changes.
PHASES = [
    ("jobs.pilot_views", "pilot_site"),
    ("jobs.pilot_views", "dispatcher.dispatch_jobs"),
    ("jobs.services.dispatcher", "_room_at"),
    ("jobs.services.dispatcher", "dispatch_sql.dispatch"),
    ("jobs.services.dispatcher", "_dispatch_orm"),
    ("jobs.services.dispatcher", "state.transition_many"),
    ("jobs.services.dispatcher", "_with_files"),
    ("jobs.services.dispatcher", "_attach_files"),
    ("jobs.services.dispatcher", "record_pilot_contact"),
    ("jobs.pilot_views", "record_pilot_contact"),
    ("jobs.pilot_views", "job_description"),
    ("jobs.pilot_views", "_answer"),
]
SINGLE_STATEMENT = "DISPATCH_SINGLE_STATEMENT"  # settings.PANDA switch between the SQL and the ORM dispatch


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=env.DEFAULT_DATABASE_URL)
    parser.add_argument("--calls", type=int, default=500, help="calls per mode")
    parser.add_argument("--sites", type=int, default=50)
    parser.add_argument("--top", type=int, default=30, help="functions to list from cProfile")
    return parser.parse_args(argv)


def query_kind(sql):
    """A short name for a query: verb, table and the clause that matters (FOR UPDATE, RETURNING)."""
    verb = sql.split(None, 1)[0].upper() if sql.strip() else "?"
    table = re.search(r'(?:FROM|INTO|UPDATE)\s+"?(\w+)"?', sql, re.IGNORECASE)
    name = f"{verb} {table.group(1) if table else ''}".strip()
    if "FOR UPDATE" in sql.upper():
        name += " FOR UPDATE"
    return name


class Caller:
    """Posts pilot requests through the Django test client, a random bench site each time."""

    def __init__(self, sites):
        from django.test import Client

        self.client = Client(HTTP_HOST="127.0.0.1", HTTP_ACCEPT="application/json")
        self.sites = sites
        self.count = 0

    def call(self, mode, n_jobs):
        self.count += 1
        form = {"siteName": self.sites[self.count % len(self.sites)], "node": "profile-node", "mem": "4000"}
        form["diskSpace"] = "20000"
        if n_jobs:
            form["nJobs"] = str(n_jobs)
        # URL-encoded like real pilots (the test client would send multipart, which parses slower).
        response = self.client.post(PATHS[mode], urlencode(form), content_type="application/x-www-form-urlencoded")
        if response.status_code != 200 or response.json().get("StatusCode") != 0:
            raise RuntimeError(f"{mode} answered {response.status_code}: {response.content[:200]!r}")


class PhaseTimer:
    """Wraps the PHASES functions in this process only (the server code is untouched) to time each step."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self._originals = []

    def install(self):
        import importlib

        for module_name, dotted in PHASES:
            owner = importlib.import_module(module_name)
            *path, name = dotted.split(".")
            for part in path:
                owner = getattr(owner, part, None)
            original = getattr(owner, name, None)
            if original is None:
                continue  # not in this version of the server
            self._originals.append((owner, name, original))
            setattr(owner, name, self._timed(dotted, original))

    def _timed(self, label, function):
        def timed(*args, **kwargs):
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - began

        return timed

    def uninstall(self):
        for owner, name, original in reversed(self._originals):
            setattr(owner, name, original)

    def report(self, label, calls, wall):
        print(f"\nsteps of {label} (1 job), ms per call, inclusive of their SQL; whole call {1000 * wall:.2f} ms:")
        for label, seconds in self.seconds.items():
            print(f"  {1000 * seconds / calls:6.2f}  {label}")


def timed_phases(caller, label, calls):
    timer = PhaseTimer()
    timer.install()
    try:
        started = time.perf_counter()
        for _ in range(calls):
            caller.call("full", None)
        timer.report(label, calls, (time.perf_counter() - started) / calls)
    finally:
        timer.uninstall()


def wall_per_call(caller, mode, n_jobs, calls):
    """Seconds per call with nothing attached (query capture alone costs a few tenths of a ms per query)."""
    started = time.perf_counter()
    for _ in range(calls):
        caller.call(mode, n_jobs)
    return (time.perf_counter() - started) / calls


def query_breakdown(caller, label, mode, n_jobs, calls):
    """Mean wall time per call and, per kind of query, how many per call and their mean time."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    wall = wall_per_call(caller, mode, n_jobs, calls)
    per_kind = defaultdict(lambda: [0, 0.0])  # kind -> [count, seconds]
    with CaptureQueriesContext(connection) as captured:
        for _ in range(calls):
            caller.call(mode, n_jobs)
            for query in captured.captured_queries:
                entry = per_kind[query_kind(query["sql"])]
                entry[0] += 1
                entry[1] += float(query["time"])
            connection.queries_log.clear()  # keep only this call's queries in the next round
    sql_total = sum(seconds for _, seconds in per_kind.values()) / calls
    print(f"\n{label}: {1000 * wall:.2f} ms per call (uninstrumented); while capturing, "
          f"{sum(count for count, _ in per_kind.values()) / calls:.1f} SQL round trips per call "
          f"(incl. COMMIT) took {1000 * sql_total:.2f} ms:")  # fmt: skip
    for kind, (count, seconds) in sorted(per_kind.items(), key=lambda item: -item[1][1]):
        print(
            f"  {count / calls:5.2f}/call  {1000 * seconds / count:6.3f} ms each  {1000 * seconds / calls:6.3f} ms/call  {kind}"
        )
    return wall


def profile_calls(caller, label, mode, n_jobs, calls, top):
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        caller.call(mode, n_jobs)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    print(f"\ncProfile of {calls} calls of {label} (own time, then cumulative, then this project's functions):")
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("cumulative").print_stats(r"/work/main/(jobs|sites|pandamon|bench)/", top)
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip() and "Ordered by" not in line))


def dispatch_paths():
    """(label, value of the switch) for each getJob implementation this server version has."""
    from django.conf import settings

    if SINGLE_STATEMENT not in settings.PANDA:
        return [("getJob", None)]
    return [("getJob, single statement", True), ("getJob, ORM path", False)]


def use_path(single):
    from django.conf import settings

    if single is not None:
        settings.PANDA[SINGLE_STATEMENT] = single  # read at every call, so it switches in-process


def measure_all(caller, args):
    walls = {}
    for label, single in dispatch_paths():
        use_path(single)
        walls[label] = query_breakdown(caller, f"{label}, 1 job", "full", None, args.calls)
        query_breakdown(caller, f"{label}, nJobs=10", "full", 10, args.calls)
        timed_phases(caller, label, args.calls)
    bare = query_breakdown(caller, "bare SQL, 1 job", "bare", 1, args.calls)
    query_breakdown(caller, "bare SQL, limit 10", "bare", 10, args.calls)
    print()
    for label, wall in walls.items():
        print(f"sequential ratio {label} / bare (1 job per call): {bare / wall:.2f}")
    for label, single in dispatch_paths():
        use_path(single)
        profile_calls(caller, f"{label}, 1 job", "full", None, args.calls, args.top)


def main(argv=None):
    args = parse_args(argv)
    env.setup_django(args.database_url)
    from sites.models import Site

    sites = list(Site.objects.filter(name__startswith=fill.SITE_PREFIX).order_by("name")[: args.sites])
    if not sites:
        sys.exit("no bench sites: run bench/dispatch.py first")
    caller = Caller([site.name for site in sites])
    try:
        fill.reset_dispatched(sites)
        for _, single in dispatch_paths():
            use_path(single)
            for mode, n_jobs in (("full", None), ("full", 10), ("bare", 1), ("bare", 10)):
                for _ in range(20):
                    caller.call(mode, n_jobs)  # warm: imports, caches, connection
        measure_all(caller, args)
    finally:
        moved, logs = fill.reset_dispatched(sites)
        print(f"\nreset: {moved:,} jobs back to activated, {logs:,} status-log rows deleted")


if __name__ == "__main__":
    main()

"""Dispatch benchmark: full getJob against the bare dispatch statement, with many concurrent pilots.

    cd /work/main && .venv/bin/python bench/dispatch.py [--jobs 1000000 --activated 300000 --sites 50
        --pilots 32 --seconds 20 --workers 4 --reuse]

Fills a PostgreSQL database with jobs (or reuses it), starts gunicorn with bench.settings,
then for each mode resets the activated set and lets pilots fetch jobs over HTTP for
--seconds. Reports jobs/s, requests/s, latency, errors and duplicate PandaIDs (must be 0),
and whether full getJob reaches 70 % of the bare statement and nJobs=10 triples throughput.
"""

import argparse
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: make `bench` importable

from bench import env, fill, load, sysinfo  # noqa: E402
from bench.server import Gunicorn  # noqa: E402

TARGET_FULL_VS_BARE = 0.70
TARGET_BATCH_SPEEDUP = 3.0
PG_SETTINGS = ["shared_buffers", "synchronous_commit", "fsync", "autovacuum", "max_connections"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=env.DEFAULT_DATABASE_URL)
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs in the table")
    parser.add_argument("--activated", type=int, default=300_000, help="of which activated (dispatchable)")
    parser.add_argument("--sites", type=int, default=50)
    parser.add_argument("--pilots", type=int, default=32, help="concurrent pilots (threads)")
    parser.add_argument("--load-processes", type=int, default=sysinfo.cores(), help="processes the pilots run in")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per mode (over all rounds)")
    parser.add_argument(
        "--rounds", type=int, default=4,
        help="interleave the modes in this many rounds, so a drift in the machine's speed hits every mode alike",
    )  # fmt: skip
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load per mode before measuring")
    parser.add_argument("--workers", type=int, default=2 * sysinfo.cores(), help="gunicorn sync workers")
    parser.add_argument(
        "--modes", default="full1,bare1,full10,bare10,barep1", help=f"comma list of {', '.join(load.MODES)}"
    )
    parser.add_argument("--reuse", action="store_true", help="keep the data if it matches; only reset it")
    parser.add_argument("--force-fill", action="store_true", help="allow wiping jobs in a database not named *bench*")
    args = parser.parse_args(argv)
    if not 0 < args.activated <= args.jobs or args.sites < 1 or args.pilots < 1:
        parser.error("need 0 < --activated <= --jobs, --sites >= 1 and --pilots >= 1")
    unknown = set(args.modes.split(",")) - set(load.MODES)
    if unknown:
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    return args


def postgres_info():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0].split(" on ")[0]
        cursor.execute("SELECT name, current_setting(name) FROM unnest(%s::text[]) AS name", [PG_SETTINGS])
        return version, cursor.fetchall()


def prepare_data(args, database_name):
    """Migrate, create the sites and fill the jobs unless --reuse finds them already there."""
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    sites = fill.ensure_sites(args.sites)
    site_ids = [site.pk for site in sites]
    if args.reuse and fill.data_matches(args.jobs, args.activated, site_ids):
        print(f"reusing {args.jobs:,} jobs ({args.activated:,} activated) in {database_name}")
        return sites
    print(f"filling {args.jobs:,} jobs ({args.activated:,} activated over {args.sites} sites) into {database_name} ...")
    seconds = fill.fill(args.jobs, args.activated, sites)
    print(f"fill took {seconds:.1f} s (insert + files + VACUUM ANALYZE)")
    return sites


def reset(sites):
    started = time.perf_counter()
    moved, logs = fill.reset_dispatched(sites)
    fill.vacuum_analyze()  # dead index entries of the previous run would slow the next one's scans
    print(f"  reset: {moved:,} sent jobs back to activated, {logs:,} status-log rows deleted, "
          f"vacuum; {time.perf_counter() - started:.1f} s")  # fmt: skip


def percentile(values, fraction):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def postgres_pids():
    """Backends of the bench database (gunicorn's) and PostgreSQL's own background processes."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
            " AND (datname = current_database() OR backend_type <> 'client backend')"
        )
        return [row[0] for row in cursor.fetchall()]


def measure(server, mode, sites, args, seconds, label=""):
    """Reset, run the pilots for `seconds`, and summarise what they received."""
    from django.db import connections

    reset(sites)
    if label:
        print(label)
    before = sysinfo.cpu_snapshot(server.pid, postgres_pids())
    connections.close_all()  # the pilot processes are forked: they must not share our DB socket
    stats, start_at = load.run_pilots(
        server.url, mode, [site.name for site in sites],
        pilots=args.pilots, processes=args.load_processes, seconds=seconds,
    )  # fmt: skip
    wall = max(stats.last_done, start_at + seconds) - start_at
    after = sysinfo.cpu_snapshot(server.pid, postgres_pids())
    unique = len(set(stats.pandaids))
    return {
        "mode": mode,
        "jobs": len(stats.pandaids),
        "jobs_s": len(stats.pandaids) / wall,
        "requests_s": stats.requests / wall,
        "wall": wall,
        "latencies": stats.latencies,
        "requests": stats.requests,
        "errors": stats.errors,
        "empty": stats.empty,
        "duplicates": len(stats.pandaids) - unique,
        "lost": fill.count_sent(sites) - unique,  # sent in the database but received by no pilot
        "cpu": sysinfo.cpu_usage(before, after, wall + 0.5, stats.cpu_seconds),  # +0.5: the start delay
        "error_samples": stats.error_samples,
        "empty_sites": stats.empty_sites,
    }


def print_table(rows):
    header = (f"{'mode':<22} {'jobs/s':>8} {'req/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'errors':>6} {'empty':>6} "
              f"{'dup':>4} {'lost':>4}  {'gunic':>5} {'pg':>5} {'load':>5} {'other':>5}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for row in rows:
        cpu = row["cpu"]
        print(
            f"{row['mode'].label:<22} {row['jobs_s']:>8.1f} {row['requests_s']:>8.1f} {row['p50']:>7.1f} "
            f"{row['p95']:>7.1f} {row['errors']:>6} {row['empty']:>6} {row['duplicates']:>4} {row['lost']:>4}  "
            f"{cpu['gunicorn']:>5.0f} {cpu['postgres']:>5.0f} {cpu['load']:>5.0f} {cpu['other']:>5.0f}"
        )
    print(f"CPU columns: percent of one core over the run ({sysinfo.cores() * 100} = all cores busy); gunic = gunicorn"
          " master+workers, pg = the bench database's backends + PostgreSQL background processes, load = the pilot"
          " processes (os.times), other = anything else on the machine")  # fmt: skip
    for row in rows:
        for sample in row["error_samples"]:
            print(f"  error in {row['mode'].key}: {sample}")
        if row["empty_sites"]:
            top = ", ".join(f"{site} {count}" for site, count in row["empty_sites"].most_common(5))
            print(f"  'no job' answers in {row['mode'].key} from {len(row['empty_sites'])} sites, most: {top}")


def _verdict(name, value, target, unit):
    met = "MET" if value >= target else "NOT MET"
    print(f"{name}: {value:.2f}{unit} (target >= {target:.2f}{unit}) -> {met}")


def print_targets(rows):
    by_key = {row["mode"].key: row for row in rows}
    if "full1" in by_key and "bare1" in by_key:
        _verdict("full getJob / bare, 1 job per call", by_key["full1"]["jobs_s"] / by_key["bare1"]["jobs_s"],
                 TARGET_FULL_VS_BARE, "")  # fmt: skip
        rounds = [full / bare for full, bare in zip(by_key["full1"]["round_jobs_s"], by_key["bare1"]["round_jobs_s"],
                                                    strict=True)]  # fmt: skip
        print(f"  per round: {', '.join(f'{ratio:.2f}' for ratio in rounds)}")
    if "full1" in by_key and "barep1" in by_key:
        # getJob's statement is prepared (jobs/services/dispatch_sql.py); the brief's bare statement is
        # planned on every call. This ratio takes planning out of both sides.
        ratio = by_key["full1"]["jobs_s"] / by_key["barep1"]["jobs_s"]
        print(f"full getJob / bare SQL prepared alike, 1 job per call: {ratio:.2f}")
    if "full10" in by_key and "bare10" in by_key:
        print(f"full getJob / bare, 10 jobs per call: {by_key['full10']['jobs_s'] / by_key['bare10']['jobs_s']:.2f}")
    if "full10" in by_key and "full1" in by_key:
        _verdict("getJob nJobs=10 vs 1 job per call (jobs/s)", by_key["full10"]["jobs_s"] / by_key["full1"]["jobs_s"],
                 TARGET_BATCH_SPEEDUP, "x")  # fmt: skip
    duplicates = sum(row["duplicates"] for row in rows)
    lost = sum(row["lost"] for row in rows)
    print(f"exactly-once: {duplicates} duplicate PandaIDs, {lost} jobs sent but not received -> "
          f"{'OK' if duplicates == 0 and lost == 0 else 'VIOLATED'}")  # fmt: skip


def dispatch_path():
    """Which getJob implementation the server will run (gunicorn inherits our environment)."""
    from django.conf import settings

    single = settings.PANDA.get("DISPATCH_SINGLE_STATEMENT")
    if single is None:
        return "ORM (this server version has no single-statement dispatch)"
    return "single SQL statement (jobs/services/dispatch_sql.py)" if single else "ORM, several statements"


def print_parameters(args, database_name):
    version, settings = postgres_info()
    for line in sysinfo.machine_lines(version, settings):
        print(line)
    print(f"parameters: database={database_name} jobs={args.jobs:,} activated={args.activated:,} sites={args.sites} "
          f"pilots={args.pilots} in {args.load_processes} processes, seconds={args.seconds:g} in {args.rounds} rounds "
          f"(warm-up {args.warmup:g}), gunicorn sync workers={args.workers}, CONN_MAX_AGE=600, DEBUG off")  # fmt: skip
    print(f"getJob dispatch path: {dispatch_path()} (PANDA_DISPATCH_SINGLE_STATEMENT=0 selects the ORM path)")


def run_modes(server, sites, args, modes):
    print(f"background load before the run (others on this machine): {sysinfo.background_busy():.0f}% of one core")
    if args.warmup > 0:
        print(f"warm-up: {args.warmup:g} s per mode (workers import code, open connections, fill caches)")
        for mode in modes:
            row = measure(server, mode, sites, args, args.warmup)
            print(f"  warm-up {mode.key}: {row['jobs_s']:.0f} jobs/s, {row['errors']} errors")
    per_mode = {mode.key: [] for mode in modes}
    slice_s = args.seconds / args.rounds
    for number in range(args.rounds):
        # Alternate the order too: a mode measured right after a reset (VACUUM) in one round comes last in the next.
        ordered = modes if number % 2 == 0 else modes[::-1]
        print(f"round {number + 1}/{args.rounds}: {slice_s:g} s per mode")
        for mode in ordered:
            row = measure(server, mode, sites, args, slice_s, f"  measuring {mode.label}")
            per_mode[mode.key].append(row)
        print_round_ratios({key: rows[-1] for key, rows in per_mode.items()})
    reset(sites)  # leave the data as the fill made it, ready for --reuse
    return [merge(per_mode[mode.key]) for mode in modes]


def print_round_ratios(last):
    if "full1" in last and "bare1" in last:
        print(f"  this round: full/bare 1 job per call {last['full1']['jobs_s'] / last['bare1']['jobs_s']:.2f}")


def merge(rows):
    """One mode's rounds as one measurement: totals over the summed time, CPU weighted by time."""
    wall = sum(row["wall"] for row in rows)
    latencies = [value for row in rows for value in row["latencies"]]
    cpu = {key: sum(row["cpu"][key] * row["wall"] for row in rows) / wall for key in rows[0]["cpu"]}
    empty_sites = sum((row["empty_sites"] for row in rows), Counter())
    return {
        "mode": rows[0]["mode"],
        "jobs": sum(row["jobs"] for row in rows),
        "jobs_s": sum(row["jobs"] for row in rows) / wall,
        "requests_s": sum(row["requests"] for row in rows) / wall,
        "p50": 1000 * percentile(latencies, 0.50),
        "p95": 1000 * percentile(latencies, 0.95),
        "errors": sum(row["errors"] for row in rows),
        "empty": sum(row["empty"] for row in rows),
        "duplicates": sum(row["duplicates"] for row in rows),
        "lost": sum(row["lost"] for row in rows),
        "cpu": cpu,
        "error_samples": [sample for row in rows for sample in row["error_samples"]][:5],
        "empty_sites": empty_sites,
        "round_jobs_s": [row["jobs_s"] for row in rows],
    }


def main(argv=None):
    args = parse_args(argv)
    database_name = args.database_url.rsplit("/", 1)[-1].split("?")[0]
    if "bench" not in database_name and not args.force_fill:
        # The bench creates sites and may wipe every job: never in a database that is not obviously a bench.
        sys.exit(f"refusing to use database {database_name!r}: its name lacks 'bench' (override with --force-fill)")
    fill.ensure_database(args.database_url)
    env.setup_django(args.database_url)
    print_parameters(args, database_name)
    sites = prepare_data(args, database_name)
    modes = [load.MODES[key] for key in args.modes.split(",")]
    log_path = Path(tempfile.gettempdir()) / f"bench-dispatch-gunicorn-{int(time.time())}.log"
    server = Gunicorn(args.workers, log_path)
    try:
        server.start()
        print(f"gunicorn pid {server.pid} on {server.url}, {args.workers} sync workers (log {log_path})")
        rows = run_modes(server, sites, args, modes)
    finally:
        server.stop()
    print()
    print_table(rows)
    print()
    print_targets(rows)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


if __name__ == "__main__":
    # SIGTERM, and SIGINT even when inherited as ignored (background jobs), unwind through the
    # `finally` blocks that stop gunicorn and the pilot processes.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted; gunicorn stopped")

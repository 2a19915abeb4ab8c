"""Catalog benchmark: bulk registration through the REST API at the 2006 DQ2 scale, then listing times.

    cd /work/main && .venv/bin/python bench/catalog.py [--datasets 25000 --files 1300000 --sites 20
        --replicas 2 --clients 4 --workers 4 --files-per-call 10000 --repeat 20]

Starts gunicorn (bench.settings) on an emptied catalog in PostgreSQL, registers the
datasets with their files through `POST /api/v1/datasets/` from concurrent clients,
registers file replicas at the sites through `POST /api/v1/replicas/`, and then
times the listings: listFilesInDataset of a 10,000-file dataset (a page, and the
whole list streamed), listDatasetReplicas, listDatasetsInSite, listFileReplicas and
listDatasets. Server time is Django's own (the Server-Timing header); the round trip
seen by the client is printed beside it. Targets: >= 20,000 files/s registered,
every listing under 200 ms.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: make `bench` importable

import requests  # noqa: E402

from bench import env, fill, sysinfo  # noqa: E402
from bench.server import Gunicorn  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/pandamon_bench_catalog"
TARGET_FILES_PER_S = 20_000
TARGET_LISTING_MS = 200
BIG_DATASET_FILES = 10_000
FORMATS = ("AOD", "ESD", "RAW", "EVNT", "HITS", "RDO", "TAG", "NTUP")
STAGES = {"AOD": "recon", "ESD": "recon", "RAW": "daq", "EVNT": "evgen", "HITS": "simul", "RDO": "digit"}
CATALOG_TABLES = [
    "datasets_claim", "datasets_datasetreplica", "datasets_filereplica", "datasets_sitereplicatotals",
    "datasets_containermember", "datasets_datasetfile", "datasets_file", "datasets_datasetversion", "datasets_dataset",
]  # fmt: skip


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--datasets", type=int, default=25_000)
    parser.add_argument("--files", type=int, default=1_300_000, help="files over all datasets")
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--replicas", type=int, default=2, help="sites holding each dataset")
    parser.add_argument("--clients", type=int, default=2 * sysinfo.cores(), help="concurrent API clients")
    parser.add_argument("--workers", type=int, default=2 * sysinfo.cores(), help="gunicorn sync workers")
    parser.add_argument("--files-per-call", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20, help="calls per listing measurement")
    args = parser.parse_args(argv)
    if args.files < BIG_DATASET_FILES + args.datasets - 1 or args.datasets < 2:
        parser.error(f"need --files >= {BIG_DATASET_FILES} + (--datasets - 1) and --datasets >= 2")
    if not 1 <= args.replicas <= args.sites:
        parser.error("need 1 <= --replicas <= --sites")
    return args


# --- The synthetic catalog: deterministic, so every client process builds the same names --------


def dataset_sizes(n_datasets, n_files):
    """Dataset 0 has 10,000 files (the listing target); the others share the rest unevenly (1x to 3x)."""
    rest = n_files - BIG_DATASET_FILES
    weights = [1 + (i * 7919 % 101) / 50 for i in range(1, n_datasets)]
    total = sum(weights)
    sizes = [max(1, int(rest * w / total)) for w in weights]
    sizes[-1] += rest - sum(sizes)
    return [BIG_DATASET_FILES, *sizes]


def dataset_name(index):
    data_format = FORMATS[index % len(FORMATS)]
    stage = STAGES.get(data_format, "merge")
    return f"mc11.{index:06d}.bench_sample{index % 97}.{stage}.{data_format}.v11000{index % 9}"


def file_specs(index, n_files):
    name = dataset_name(index)
    return [
        {"lfn": f"{name}._{j:05d}.pool.root.1", "fsize": 1_000_000 + (index * 31 + j) % 999_983,
         "adler32": f"{(index * 100_003 + j * 7) & 0xFFFFFFFF:08x}", "events": 250}
        for j in range(n_files)
    ]  # fmt: skip


def batches(sizes, files_per_call):
    """Consecutive datasets grouped into calls of about files_per_call files: [(first, last_exclusive)]."""
    groups, start, count = [], 0, 0
    for index, size in enumerate(sizes):
        count += size
        if count >= files_per_call:
            groups.append((start, index + 1))
            start, count = index + 1, 0
    if start < len(sizes):
        groups.append((start, len(sizes)))
    return groups


def replica_sites(index, n_sites, n_replicas):
    return [(index * 7 + k * (n_sites // n_replicas or 1)) % n_sites for k in range(n_replicas)]


# --- Client processes ----------------------------------------------------------------------

_session = None


def _client(url, token):
    global _session
    if _session is None:
        _session = requests.Session()
        _session.headers.update({"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    return _session


def register_batch(job):
    url, token, sizes, (first, last) = job
    body = {"datasets": [{"name": dataset_name(i), "files": file_specs(i, sizes[i])} for i in range(first, last)]}
    data = json.dumps(body)
    started = time.perf_counter()
    answer = _client(url, token).post(url + "/api/v1/datasets/", data=data, timeout=600)
    seconds = time.perf_counter() - started
    if answer.status_code != 201:
        raise RuntimeError(f"registration of datasets {first}-{last} failed: {answer.status_code} {answer.text[:300]}")
    return sum(sizes[first:last]), seconds


def register_replicas(job):
    url, token, site, lfns = job
    body = json.dumps({"site": site, "replicas": [{"lfn": lfn} for lfn in lfns]})
    answer = _client(url, token).post(url + "/api/v1/replicas/", data=body, timeout=600)
    if answer.status_code != 200:
        raise RuntimeError(f"replica registration at {site} failed: {answer.status_code} {answer.text[:300]}")
    return answer.json()["added"]


# --- Phases --------------------------------------------------------------------------------


def prepare(args, database_name):
    """Empty catalog, the sites with directory storage, and an operator's API token."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import connection
    from psycopg2 import sql
    from rest_framework.authtoken.models import Token

    call_command("migrate", verbosity=0, interactive=False)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE " + ", ".join(CATALOG_TABLES) + " RESTART IDENTITY")  # constant table names
    sites = fill.ensure_sites(args.sites)
    # The setting docs/deploy.md recommends for SSD storage; new connections (gunicorn's) pick it up.
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("ALTER DATABASE {} SET random_page_cost = 1.1").format(sql.Identifier(database_name)))
        cursor.execute("SET random_page_cost = 1.1")
    storage = Path(tempfile.gettempdir()) / "bench-catalog-storage"
    for site in sites:
        site.storage_endpoint = str(storage / site.name)
        site.save(update_fields=["storage_endpoint"])
    user, _ = get_user_model().objects.get_or_create(username="bench-ddm-operator")
    user.groups.add(Group.objects.get(name="data_operator"))
    token, _ = Token.objects.get_or_create(user=user)
    return [site.name for site in sites], token.key


def vacuum_analyze():
    from django.db import connection

    with connection.cursor() as cursor:
        for table in CATALOG_TABLES:
            cursor.execute("VACUUM ANALYZE " + table)  # constant table names


def run_registration(server, token, sizes, args):
    jobs = [(server.url, token, sizes, group) for group in batches(sizes, args.files_per_call)]
    started = time.perf_counter()
    with ProcessPoolExecutor(args.clients) as pool:
        results = list(pool.map(register_batch, jobs))
    wall = time.perf_counter() - started
    n_files = sum(n for n, _ in results)
    calls = [seconds for _, seconds in results]
    print(
        f"registered {len(sizes):,} datasets with {n_files:,} files in {wall:.1f} s: "
        f"{n_files / wall:,.0f} files/s ({len(jobs)} calls of ~{args.files_per_call:,} files, {args.clients} clients; "
        f"median call {statistics.median(calls):.2f} s)"
    )
    return n_files / wall


def run_replicas(server, token, sizes, site_names, args):
    per_site = {name: [] for name in site_names}
    for index, size in enumerate(sizes):
        for site in replica_sites(index, len(site_names), args.replicas):
            per_site[site_names[site]].extend(f"{dataset_name(index)}._{j:05d}.pool.root.1" for j in range(size))
    jobs = [
        (server.url, token, site, lfns[start : start + args.files_per_call])
        for site, lfns in per_site.items()
        for start in range(0, len(lfns), args.files_per_call)
    ]
    started = time.perf_counter()
    with ProcessPoolExecutor(args.clients) as pool:
        added = sum(pool.map(register_replicas, jobs))
    wall = time.perf_counter() - started
    print(
        f"registered {added:,} file replicas at {len(site_names)} sites in {wall:.1f} s: {added / wall:,.0f} replicas/s"
    )


def server_ms(answer):
    timing = answer.headers.get("Server-Timing", "")
    return float(timing.split("dur=")[1]) if "dur=" in timing else float("nan")


def time_call(session, method, url, repeat, **kwargs):
    """Median server time and median round trip (ms) of `repeat` calls; checks each answer."""
    server, round_trip = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        answer = session.request(method, url, timeout=60, **kwargs)
        body = answer.content  # a stream is timed to its last byte
        round_trip.append((time.perf_counter() - started) * 1000)
        server.append(server_ms(answer))
        if answer.status_code != 200:
            raise RuntimeError(f"{method} {url}: {answer.status_code} {body[:300]!r}")
    return statistics.median(server), statistics.median(round_trip), body


def run_listings(server, token, sizes, site_names, args):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    big = dataset_name(0)
    busiest = site_names[0]
    lookup = [f"{dataset_name(i)}._00000.pool.root.1" for i in range(1, 1001)]
    calls = [
        ("listFilesInDataset, 10,000-file dataset, first page of 100", "GET", f"/api/v1/datasets/{big}/files/?limit=100", {}),
        ("listFilesInDataset, 10,000-file dataset, page of 1,000", "GET", f"/api/v1/datasets/{big}/files/?limit=1000", {}),
        ("listFilesInDataset, 10,000-file dataset, whole list streamed", "GET", f"/api/v1/datasets/{big}/files/?stream=1", {}),
        ("listDatasetReplicas, 10,000-file dataset", "GET", f"/api/v1/datasets/{big}/replicas/", {}),
        ("listDatasetsInSite, first page of 100", "GET", f"/api/v1/replicas/datasets/?site={busiest}&limit=100", {}),
        ("listDatasetsInSite, complete only, page of 100", "GET",
         f"/api/v1/replicas/datasets/?site={busiest}&complete=true&limit=100", {}),
        ("listDatasetsInSite, whole site streamed", "GET", f"/api/v1/replicas/datasets/?site={busiest}&stream=1", {}),
        ("listFileReplicas, 1,000 LFNs in one call", "POST", "/api/v1/replicas/lookup/", {"json": {"lfns": lookup}}),
        ("listDatasets, pattern mc11.0001*.AOD.*", "GET", "/api/v1/datasets/?name=mc11.0001*.AOD.*&limit=100", {}),
        ("dataset detail with versions", "GET", f"/api/v1/datasets/{big}/", {}),
        ("file detail with its datasets", "GET", f"/api/v1/files/{big}._04242.pool.root.1/", {}),
    ]  # fmt: skip
    print(f"\nlistings: median of {args.repeat} calls each (server = Django's time, Server-Timing header;"
          " for streams only to the first byte, so the round trip is the figure)")  # fmt: skip
    print(f"{'call':<62} {'server ms':>10} {'round trip ms':>14} {'rows':>7}  target")
    worst = 0.0
    for label, method, path, kwargs in calls:
        server_time, round_trip, body = time_call(session, method, server.url + path, args.repeat, **kwargs)
        rows = _rows_in(body)
        figure = round_trip if "streamed" in label else server_time
        worst = max(worst, figure)
        verdict = "met" if figure < TARGET_LISTING_MS else "MISSED"
        print(f"{label:<62} {server_time:>10.1f} {round_trip:>14.1f} {rows:>7}  {verdict}")
    return worst


def _rows_in(body):
    text = body.decode()
    if text.startswith("{") and not text.rstrip().count("\n"):
        data = json.loads(text)
        for key in ("results", "replicas"):
            if key in data:
                return len(data[key])
        return 1
    return text.count("\n")


def main(argv=None):
    args = parse_args(argv)
    database_name = fill.ensure_database(args.database_url)
    if "bench" not in database_name:
        sys.exit(f"refusing to use database {database_name!r}: its name lacks 'bench' (the catalog is emptied)")
    env.setup_django(args.database_url)
    site_names, token = prepare(args, database_name)
    print("\n".join(sysinfo.machine_lines(*_pg_info())))
    sizes = dataset_sizes(args.datasets, args.files)
    log_path = Path(tempfile.gettempdir()) / f"bench-catalog-gunicorn-{int(time.time())}.log"
    server = Gunicorn(args.workers, log_path).start()
    try:
        rate = run_registration(server, token, sizes, args)
        run_replicas(server, token, sizes, site_names, args)
        vacuum_analyze()
        worst = run_listings(server, token, sizes, site_names, args)
    finally:
        server.stop()
    print(f"\ntarget registration >= {TARGET_FILES_PER_S:,} files/s: {'met' if rate >= TARGET_FILES_PER_S else 'MISSED'}"
          f" ({rate:,.0f}); target every listing < {TARGET_LISTING_MS} ms: "
          f"{'met' if worst < TARGET_LISTING_MS else 'MISSED'} (slowest {worst:.1f} ms)")  # fmt: skip


PG_SETTINGS = ["shared_buffers", "synchronous_commit", "random_page_cost", "max_parallel_workers_per_gather"]


def _pg_info():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0].split(" on ")[0]
        cursor.execute("SELECT name, current_setting(name) FROM unnest(%s::text[]) AS name", [PG_SETTINGS])
        return version, cursor.fetchall()


if __name__ == "__main__":
    main()

"""Transfer benchmark: 100,000 small files subscribed across 10 sites, moved by the real agents.

    cd /work/main && .venv/bin/python bench/transfers.py [--files 10000 --sites 10 --agents 2
        --size 1024 --new-files 1000]

On its own database (`pandamon_bench_transfers`, emptied at the start) and a scratch
directory of site storages, it registers one dataset of `--files` small files held at
a source site, subscribes `--sites` sites to it (files x sites transfers), and runs
`--agents` `manage.py transfer_agent` processes (the local copy tool) until every
file is everywhere. It prints the transfers per second sustained (target >= 500/s),
then registers a new version with `--new-files` more files and prints the time from
"new version registered" to "complete at all subscribed sites".
"""

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: make `bench` importable

from bench import env, fill, sysinfo  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/pandamon_bench_transfers"
TARGET_FILES_PER_S = 500
DATASET = "mc11.105200.bench_transfers.evgen.EVNT.e1000"
TABLES = [
    "datasets_transferchannelstat", "datasets_transferrequest", "datasets_replicacallback", "datasets_subscription",
    "datasets_claim", "datasets_datasetreplica", "datasets_filereplica", "datasets_containermember",
    "datasets_datasetfile", "datasets_file", "datasets_datasetversion", "datasets_dataset",
]  # fmt: skip


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--files", type=int, default=10_000, help="files in the dataset")
    parser.add_argument("--sites", type=int, default=10, help="subscribed sites")
    parser.add_argument("--agents", type=int, default=sysinfo.cores(), help="transfer agent processes")
    parser.add_argument("--batch", type=int, default=500, help="requests an agent claims per pass")
    parser.add_argument("--threads", type=int, default=8, help="copy threads per agent")
    parser.add_argument("--size", type=int, default=1024, help="bytes per file")
    parser.add_argument("--new-files", type=int, default=1000, help="files in the new version")
    parser.add_argument("--storage", default=str(Path(tempfile.gettempdir()) / "bench-transfer-storage"))
    args = parser.parse_args(argv)
    if "bench" not in args.database_url.rsplit("/", 1)[-1]:
        parser.error("refusing a database whose name lacks 'bench'")
    return args


def prepare(args):
    """Empty catalog and queue, a source site and the subscribed sites with fresh storage directories."""
    from django.core.management import call_command
    from django.db import connection

    from sites.models import Cloud, Site

    call_command("migrate", verbosity=0, interactive=False)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE " + ", ".join(TABLES) + " RESTART IDENTITY")  # constant table names
    shutil.rmtree(args.storage, ignore_errors=True)
    cloud, _ = Cloud.objects.get_or_create(name="BENCHXFER", defaults={"tier1": "XFERSRC"})
    names = ["XFERSRC"] + [f"XFER{number:03d}" for number in range(1, args.sites + 1)]
    sites = []
    for index, name in enumerate(names):
        storage = Path(args.storage) / name
        storage.mkdir(parents=True)
        site, _ = Site.objects.update_or_create(
            name=name, defaults={"cloud": cloud, "tier": 1 if index == 0 else 2, "storage_endpoint": str(storage),
                                 "transfer_tools": "local", "storage_http_url": ""},
        )  # fmt: skip
        sites.append(site)
    return sites[0], sites[1:]


def operator():
    from django.contrib.auth import get_user_model

    from pandamon import roles
    from tests.factories import grant_role

    user, _ = get_user_model().objects.get_or_create(username="bench-ddm-operator")
    grant_role(user, roles.DATA_OPERATOR)
    return user


def write_files(source, first, count, size):
    """Real files at the source's deterministic paths; returns their specs."""
    from datasets.services.replicas import deterministic_pfn

    specs = []
    for number in range(first, first + count):
        lfn = f"EVNT.bench._{number:07d}.pool.root"
        data = number.to_bytes(8, "big") * (size // 8)
        path = Path(deterministic_pfn(source, lfn))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        specs.append({"lfn": lfn, "fsize": len(data), "adler32": f"{zlib.adler32(data):08x}"})
    return specs


def register(user, source, specs, new_version):
    from datasets.services import catalog, replicas

    if new_version:
        catalog.register_new_version(user=user, name=DATASET, files=specs)
    else:
        catalog.register_new_dataset(user=user, name=DATASET, files=specs)
    replicas.register_file_replicas(user=user, site_name=source.name, replicas=[{"lfn": s["lfn"]} for s in specs])


def start_agents(args, until_idle):
    environment = {**os.environ, "PANDA_TRANSFER_THREADS": str(args.threads), "LOG_LEVEL": "WARNING"}
    argv = [sys.executable, "manage.py", "transfer_agent", "--batch", str(args.batch), "--idle-sleep", "0.2"]
    if until_idle:
        argv.append("--until-idle")
    return [
        subprocess.Popen(
            [*argv, "--name", f"bench-agent-{n}"],
            cwd=env.ROOT,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        for n in range(args.agents)
    ]


def done_count():
    from datasets.models import TransferRequest

    return TransferRequest.objects.filter(state="done").count()


def run_bulk(args, total):
    """Agents until idle; prints progress every 5 s and returns (seconds, done)."""
    started, machine, children = time.monotonic(), _machine_ticks(), resource.getrusage(resource.RUSAGE_CHILDREN)
    agents = start_agents(args, until_idle=True)
    last_report, last_done = started, 0
    while any(agent.poll() is None for agent in agents):
        time.sleep(0.5)
        if time.monotonic() - last_report >= 5:
            done, now = done_count(), time.monotonic()
            print(
                f"  {now - started:6.1f} s: {done:,} of {total:,} done ({(done - last_done) / (now - last_report):,.0f}/s)"
            )
            last_report, last_done = now, done
    seconds = time.monotonic() - started
    for agent in agents:
        if agent.returncode:
            print(f"agent exited {agent.returncode}: {agent.stderr.read().decode(errors='replace')[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    agent_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    busy = _machine_busy_percent(machine, _machine_ticks())
    print(
        f"  cpu: agents {100 * agent_cpu / seconds:.0f} % of one core; whole machine {busy:.0f} % "
        f"(of {sysinfo.cores() * 100} %; the rest is mostly PostgreSQL)"
    )
    return seconds, done_count()


def _machine_ticks():
    values = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(values) - values[3] - values[4], sum(values)


def _machine_busy_percent(before, after):
    return 100.0 * sysinfo.cores() * (after[0] - before[0]) / max(1, after[1] - before[1])


def run_new_version(args, user, source, subscribed):
    """Register a new version while agents run; returns seconds until complete at every subscribed site."""
    from datasets.models import DatasetReplica

    agents = start_agents(args, until_idle=False)
    try:
        time.sleep(2)  # let the agents start and go idle
        specs = write_files(source, args.files, args.new_files, args.size)
        started = time.monotonic()
        register(user, source, specs, new_version=True)
        complete = DatasetReplica.objects.filter(dataset__name=DATASET, site__in=subscribed, complete_at__isnull=False)
        while complete.count() < len(subscribed):
            time.sleep(0.2)
            if time.monotonic() - started > 600:
                print("  not complete after 600 s")
                break
        return time.monotonic() - started
    finally:
        for agent in agents:
            agent.terminate()
            agent.wait(timeout=30)


def main(argv=None):
    args = parse_args(argv)
    fill.ensure_database(args.database_url)
    env.setup_django(args.database_url)
    from datasets.services import subscriptions

    for line in sysinfo.machine_lines(*_pg_info()):
        print(line)
    source, subscribed = prepare(args)
    user = operator()
    total = args.files * args.sites
    print(f"{args.files:,} files of {args.size:,} bytes at {source.name}, subscribed by {args.sites} sites: "
          f"{total:,} transfers; {args.agents} agent(s) x {args.threads} threads, local copy tool")  # fmt: skip
    started = time.monotonic()
    register(user, source, write_files(source, 0, args.files, args.size), new_version=False)
    print(f"registered the dataset in {time.monotonic() - started:.1f} s")
    for site in subscribed:
        subscriptions.create_subscription(user=user, name=DATASET, site_name=site.name)
    seconds, done = run_bulk(args, total)
    print(f"transfers: {done:,} of {total:,} done in {seconds:.1f} s = {done / seconds:,.0f} files/s "
          f"(target >= {TARGET_FILES_PER_S}/s; includes queueing them)")  # fmt: skip
    latency = run_new_version(args, user, source, subscribed)
    print(
        f"new version of {args.new_files:,} files: complete at all {args.sites} sites {latency:.1f} s after "
        "it was registered"
    )


def _pg_info():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0].split(" on ")[0]
        cursor.execute("SELECT name, current_setting(name) FROM unnest(%s::text[]) AS name",
                       [["shared_buffers", "synchronous_commit", "jit"]])  # fmt: skip
        return version, cursor.fetchall()


if __name__ == "__main__":
    main()

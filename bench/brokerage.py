"""Brokerage benchmark: 100,000 defined jobs over 100 sites with data locality, and a 2,200-file task.

    cd /work/main && .venv/bin/python bench/brokerage.py [--jobs 100000 --sites 100 --batch 2000
        --profile 20]

On its own database (`pandamon_bench_brokerage`; jobs, catalog and tasks are emptied at the start) it
creates `--sites` sites in 5 clouds with varied limits, releases, queue limits, storage and load
(running and activated jobs), registers the tasks' input datasets in the catalog with replicas at
2-3 sites each (7 tasks in 10 read catalogued input; the others, like event generation, read none),
and inserts `--jobs` defined jobs in tasks of 2,000 (some tasks exclude sites, one user is at their
running-jobs quota, one task in 10 runs at a given site). Then it runs the real brokerage
(jobs.services.brokerage.broker_defined_jobs, batches of `--batch`) until every job was brokered once
and prints jobs brokered per second (target >= 5,000/s) with what was decided; `--profile N` prints
the N costliest functions of the first pass under cProfile (that pass is left out of the figure). Last, it times creating and splitting a
2,200-file production task (tasks.services.creation.submit_task with seed-grid.json's example_task)
and brokering its jobs.
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: make `bench` importable

from bench import env, fill, sysinfo  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/pandamon_bench_brokerage"
TARGET_JOBS_PER_S = 5000
JOBS_PER_TASK = 2000
SITE_PREFIX = "BRK_"
TABLES = [
    "jobs_brokeragedecision", "jobs_brokeragecontext", "jobs_jobstatuslog", "jobs_jobfile", "jobs_jobreport",
    "jobs_job", "tasks_taskinput", "tasks_jobset", "tasks_taskstatuslog", "tasks_task",
    "datasets_transferrequest", "datasets_replicacallback", "datasets_subscription", "datasets_claim",
    "datasets_datasetreplica", "datasets_filereplica", "datasets_sitereplicatotals", "datasets_containermember",
    "datasets_datasetfile", "datasets_file", "datasets_datasetversion", "datasets_dataset", "quotas_accountusage",
]  # fmt: skip
SEED = json.loads((Path(__file__).resolve().parent.parent / "sites" / "data" / "seed-grid.json").read_text())

JOB_SOURCE = """
WITH base AS (
    SELECT g, (g - 1) / %(per_task)s AS t, mod(g - 1, %(per_task)s) + 1 AS k
    FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
), tasks AS (
    SELECT base.*, (%(task_ids)s::bigint[])[t + 1] AS task_id, (%(labels)s::text[])[t + 1] AS label,
           (%(owner_ids)s::bigint[])[t + 1] AS owner_id, (%(owners)s::text[])[t + 1] AS owner_name,
           (%(releases)s::text[])[t + 1] AS release
    FROM base
)
"""
JOB_COLUMNS = {
    "pandaid": "g",
    "job_name": "'bench_brokerage.' || task_id || '._' || lpad(k::text, 6, '0')",
    "task_id": "task_id",
    "jobset_id": "task_id",
    "job_definition_id": "task_id",
    "prod_source_label": "label",
    "transformation": "'csc.reco.trf'",
    "sw_release": "release",
    "owner_id": "owner_id",
    "prod_user_name": "owner_name",
    "vo": "'atlas'",
    # The jobs of a task given a site come with it.
    "computing_site_id": "(%(pins)s::bigint[])[t + 1]",
    "core_count": "CASE WHEN mod(t, 6) = 5 THEN 8 ELSE 1 END",
    "min_ram_count": "(ARRAY[1000, 2000, 3000, 6000])[1 + mod(t, 4)]",
    "max_disk_count": "5000",
    "max_walltime": "36000",
    "assigned_priority": "1000",
    "current_priority": "CASE WHEN label = 'user' THEN 1000 - k / 5 ELSE 1000 END",
    "status": "'defined'",
    "creation_time": "%(now)s",
    "modification_time": "%(now)s",
    "state_change_time": "%(now)s",
    "n_input_files": "CASE WHEN (%(inputs)s::text[])[t + 1] <> '' THEN 1 ELSE 0 END",
}
FILE_SOURCE = """
FROM jobs_job AS j
JOIN LATERAL (SELECT (j.pandaid - 1) / %(per_task)s AS t, mod(j.pandaid - 1, %(per_task)s) + 1 AS k) AS n ON true
CROSS JOIN (VALUES ('input'), ('output'), ('log')) AS f(kind)
WHERE j.pandaid BETWEEN %(first)s AND %(last)s AND (f.kind <> 'input' OR (%(inputs)s::text[])[n.t + 1] <> '')
"""
FILE_COLUMNS = {
    "job_id": "j.pandaid",
    "type": "f.kind",
    "lfn": "CASE f.kind WHEN 'input' THEN (%(inputs)s::text[])[n.t + 1] || '._' || lpad(n.k::text, 6, '0') || '.pool.root'"
    " WHEN 'output' THEN (%(outputs)s::text[])[n.t + 1] || '._' || lpad(n.k::text, 6, '0') || '.root'"
    " ELSE (%(outputs)s::text[])[n.t + 1] || '.log._' || lpad(n.k::text, 6, '0') || '.tgz' END",
    "guid": "CASE f.kind WHEN 'input' THEN '' ELSE md5(f.kind || j.pandaid)::uuid::text END",
    "dataset": "CASE f.kind WHEN 'input' THEN (%(inputs)s::text[])[n.t + 1] ELSE (%(outputs)s::text[])[n.t + 1] END",
    "prod_dblock": "CASE f.kind WHEN 'input' THEN (%(inputs)s::text[])[n.t + 1] ELSE '' END",
    "destination_dblock": "CASE f.kind WHEN 'input' THEN '' ELSE (%(outputs)s::text[])[n.t + 1] END",
    "status": "CASE f.kind WHEN 'input' THEN 'ready' ELSE 'unknown' END",
}
# Load already at the sites: running and activated jobs (no files), so the weights differ from the start.
LOAD_SOURCE = """
FROM (SELECT s.id AS site_id, s.n, st.state, generate_series(1, CASE st.state
        WHEN 'running' THEN mod(s.n * 53, 400) ELSE mod(s.n * 29, 300) END) AS k
      FROM unnest(%(site_ids)s::bigint[]) WITH ORDINALITY AS s(id, n)
      CROSS JOIN (VALUES ('running'), ('activated')) AS st(state)) AS l
"""
LOAD_COLUMNS = {
    "job_name": "'bench_brokerage.load.' || l.site_id || '.' || l.state || '.' || l.k",
    "transformation": "'/bin/true'",
    "prod_source_label": "'managed'",
    "computing_site_id": "l.site_id",
    "status": "l.state",
    "creation_time": "%(now)s",
    "modification_time": "%(now)s",
    "state_change_time": "%(now)s",
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--jobs", type=int, default=100_000, help="defined jobs to broker")
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--batch", type=int, default=None, help="jobs per brokerage pass (default: the setting)")
    parser.add_argument("--task-files", type=int, default=SEED["example_task"]["input_files"])
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="cProfile the first pass, print N lines")
    args = parser.parse_args(argv)
    if "bench" not in args.database_url.rsplit("/", 1)[-1]:
        parser.error("refusing a database whose name lacks 'bench'")
    if args.jobs < 1 or args.sites < 10:
        parser.error("need --jobs >= 1 and --sites >= 10")
    return args


# -- data ----------------------------------------------------------------------------------------------


def empty_tables():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")  # constant table names


def create_sites(n_sites):
    """Sites of varied limits, releases, queue sizes and storage in 5 clouds; the first of each is its Tier-1."""
    from django.utils import timezone

    from sites.models import Cloud, PilotActivity, Site, StorageSpace

    Site.objects.filter(name__startswith=SITE_PREFIX).update(status="offline")
    clouds = []
    for c in range(5):
        cloud, _ = Cloud.objects.update_or_create(name=f"BRKCLOUD{c}", defaults={"tier1": f"{SITE_PREFIX}{c + 1:03d}"})
        clouds.append(cloud)
    sites = []
    for n in range(1, n_sites + 1):
        status = "offline" if n % 33 == 0 else "brokeroff" if n % 25 == 0 else "online"
        releases = [["23.0.*"], ["22.0.1", "23.0.53"], [], []][n % 4]
        site, _ = Site.objects.update_or_create(
            name=f"{SITE_PREFIX}{n:03d}",
            defaults={
                "cloud": clouds[(n - 1) % 5] if n > 5 else clouds[n - 1], "tier": 1 if n <= 5 else 2,
                "status": status, "max_memory_mb": [2000, 4000, 4000, 8000, 16000][n % 5],
                "cores": 8 if n % 3 == 0 else 1, "max_walltime_s": 48 * 3600 if n % 7 else 8 * 3600,
                "max_running_jobs": 500 + (n * 37 % 20) * 100, "releases": releases,
                "storage_endpoint": f"/tmp/bench-brokerage/{n:03d}",
            },
        )  # fmt: skip
        PilotActivity.objects.get_or_create(site=site)
        free = 5 * 10**8 if n % 50 == 7 else 10**14  # two sites with full storage
        StorageSpace.objects.update_or_create(
            site=site, defaults={"used_bytes": 10**14 - free, "free_bytes": free, "total_bytes": 10**14,
                                 "reported_at": timezone.now(), "reported_by": "bench"},
        )  # fmt: skip
        sites.append(site)
    return sites


def people():
    from django.contrib.auth import get_user_model

    from pandamon import roles
    from tests.factories import grant_role

    users = get_user_model().objects
    operator, _ = users.get_or_create(username="bench-ddm-operator")
    grant_role(operator, roles.DATA_OPERATOR)
    manager, _ = users.get_or_create(username="bench-prodmgr")
    grant_role(manager, roles.PRODUCTION_MANAGER)
    analysts = [users.get_or_create(username=f"benchuser{i:02d}")[0] for i in range(10)]
    return operator, manager, analysts


def quota_for_one_user(analyst):
    """One analyst is at their running-jobs quota: brokerage holds their jobs."""
    from quotas.choices import AccountKind, Resource, SubjectKind
    from quotas.models import AccountUsage, QuotaRule

    QuotaRule.objects.update_or_create(
        subject_kind=SubjectKind.USER, subject_name=analyst.username, resource=Resource.RUNNING_JOBS,
        defaults={"hard_limit": 100},
    )  # fmt: skip
    AccountUsage.objects.update_or_create(kind=AccountKind.USER, name=analyst.username, defaults={"running_jobs": 100})


def input_name(t):
    return f"mc23_13p6TeV.{800000 + t}.bench_brokerage.evgen.EVNT.e{1000 + t}"


def register_inputs(operator, sites, n_tasks, per_task):
    """The catalogued tasks' input datasets, with full replicas at 2 sites and half of one at a third."""
    from datasets.services import catalog, replicas

    online = [site for site in sites if site.status == "online"]
    names = {}
    for t in range(n_tasks):
        if t % 10 >= 7:
            continue  # event generation: no input
        name = names[t] = input_name(t)
        lfns = [f"{name}._{k:06d}.pool.root" for k in range(1, per_task + 1)]
        files = [{"lfn": lfn, "fsize": 2_000_000_000 + k, "adler32": f"{k:08x}"} for k, lfn in enumerate(lfns)]
        catalog.register_new_dataset(user=operator, name=name, files=files)
        holders = [online[(t * 7) % len(online)], online[(t * 13 + 5) % len(online)]]
        for site in holders:
            replicas.register_file_replicas(user=operator, site_name=site.name, replicas=[{"lfn": lfn} for lfn in lfns])
        third = online[(t * 17 + 11) % len(online)]
        if third not in holders:
            half = lfns[: len(lfns) // 2]
            replicas.register_file_replicas(user=operator, site_name=third.name, replicas=[{"lfn": x} for x in half])
    return names


def create_tasks(manager, analysts, sites, n_tasks):
    """Task rows (their site lists are brokerage rules); [(task, label, owner, release, output, site), ...]."""
    from tasks.models import Task

    online = [site for site in sites if site.status == "online"]
    made = []
    for t in range(n_tasks):
        user_task = t % 5 == 4
        owner = analysts[t % len(analysts)] if user_task else manager
        output = (f"user.{owner.username}.bench_brokerage.{t}.out" if user_task
                  else f"mc23_13p6TeV.{800000 + t}.bench_brokerage.recon.AOD.r{2000 + t}")  # fmt: skip
        excluded = [online[(t * 3 + k) % len(online)].name for k in range(3)] if t % 4 == 0 else []
        site = online[(t * 11) % len(online)] if t % 10 == 3 else None
        release = ["23.0.53", "22.0.1", "", "23.0.53"][t % 4]
        task = Task.objects.create(
            name=f"bench_brokerage.task{t}", type="analysis" if user_task else "production", owner=owner,
            owner_name=owner.username, prod_source_label="user" if user_task else "managed",
            transformation="csc.reco.trf", sw_release=release, input_dataset=input_name(t), output_dataset=output,
            excluded_sites=excluded, site=site.name if site else "", status="ready",
        )  # fmt: skip
        made.append((task, "user" if user_task else "managed", owner, release, output, site))
    return made


def insert_jobs(n_jobs, tasks, inputs, sites, now):
    from django.db import connection

    from jobs.models import Job, JobFile

    columns = list(zip(*tasks, strict=True))
    params = {
        "per_task": JOBS_PER_TASK, "now": now, "task_ids": [task.pk for task in columns[0]], "labels": list(columns[1]),
        "owner_ids": [owner.pk for owner in columns[2]], "owners": [owner.username for owner in columns[2]],
        "releases": list(columns[3]), "outputs": list(columns[4]),
        "pins": [site.pk if site else None for site in columns[5]],
        "inputs": [inputs.get(t, "") for t in range(len(tasks))],
    }  # fmt: skip
    job_sql, job_defaults = fill._insert_sql(Job, JOB_COLUMNS, JOB_SOURCE, "FROM tasks")
    file_sql, file_defaults = fill._insert_sql(JobFile, FILE_COLUMNS, "", FILE_SOURCE)
    for first in range(1, n_jobs + 1, 50_000):
        chunk = {"first": first, "last": min(first + 49_999, n_jobs)}
        with connection.cursor() as cursor:
            cursor.execute(job_sql, {**params, **job_defaults, **chunk})
            cursor.execute(file_sql, {**params, **file_defaults, **chunk})
    fill._sync_identity(Job, "pandaid")
    load_sql, load_defaults = fill._insert_sql(Job, LOAD_COLUMNS, "", LOAD_SOURCE)
    with connection.cursor() as cursor:
        cursor.execute(load_sql, {**load_defaults, "site_ids": [site.pk for site in sites], "now": now})
    fill._sync_identity(JobFile, "id")


def vacuum_analyze():
    from django.db import connection

    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"VACUUM (ANALYZE) {table}")  # constant table names


# -- measurements --------------------------------------------------------------------------------------


# Steps of a brokerage pass timed by broker_all (module, function): where the time goes.
STEPS = [
    ("jobs.services.brokerage", "_lock_batch"), ("jobs.services.brokerage", "SiteLoad"),
    ("jobs.services.brokerage", "InputLocality"), ("jobs.services.brokerage", "_rules_of"),
    ("jobs.services.brokerage", "decide"), ("jobs.services.brokerage_sql", "record_decisions"),
    ("jobs.services.setupper", "prepare_sites"), ("jobs.services.brokerage_sql", "move_jobs"),
    ("jobs.services.brokerage_sql", "note_refusals"),
]  # fmt: skip
SETUPPER_PARTS = [
    ("datasets.services.system", "create_dispatch_blocks"), ("datasets.services.system", "destination_datasets"),
    ("datasets.services.subscriptions", "subscribe_many"), ("datasets.services.callbacks", "register_callbacks"),
    ("jobs.services.bulk_sql", "set_dispatch_blocks"), ("jobs.services.bulk_sql", "set_destination_blocks"),
]  # fmt: skip


def broker_all(batch):
    """One brokerage run (batches of `batch`) until every defined job was looked at once.

    Returns (seconds, counts, {step: seconds}); the steps are timed by wrapping them (a few µs a call).
    """
    import importlib

    from jobs.services.brokerage import broker_defined_jobs

    spent, originals = {}, []

    def timed(module, name):
        function = getattr(module, name)

        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - started

        return wrapper

    for module_name, name in STEPS + SETUPPER_PARTS:
        module = importlib.import_module(module_name)
        originals.append((module, name, getattr(module, name)))
        setattr(module, name, timed(module, name))
    try:
        started = time.perf_counter()
        counts = broker_defined_jobs(batch=batch, seconds=3600)
        return time.perf_counter() - started, counts, spent
    finally:
        for module, name, function in originals:
            setattr(module, name, function)


def locality_report():
    """How many placed jobs with catalogued input went to a site holding all or part of it."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT count(*), count(*) FILTER (WHERE d.candidates -> 0 ->> 2 IS NOT NULL AND EXISTS (
                       SELECT 1 FROM jsonb_array_elements(d.candidates) AS c
                       WHERE (c ->> 0)::bigint = d.site_id AND (c ->> 2)::float > 0))
            FROM jobs_brokeragedecision AS d JOIN jobs_job AS j ON j.pandaid = d.job_id
            WHERE d.outcome = 'picked' AND j.n_input_files > 0
        """)  # fmt: skip
        return cursor.fetchone()


def log_sizes():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM jobs_brokeragedecision), (SELECT count(*) FROM jobs_brokeragecontext), "
            "pg_total_relation_size('jobs_brokeragedecision'), pg_total_relation_size('jobs_brokeragecontext')"
        )
        return cursor.fetchone()


def profile_first_pass(batch, lines):
    """The first brokerage pass (fresh defined jobs) under cProfile; returns its counts."""
    from jobs.services.brokerage import broker_defined_jobs

    profiler = cProfile.Profile()
    profiler.enable()
    counts = broker_defined_jobs(batch=batch, seconds=0)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(lines)
    print(f"profile of the first pass ({counts}), not counted in the figure below:")
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))
    return counts


def task_creation(operator, manager, sites, n_files):
    """Register the example task's input, then time submit_task (create + split) and brokering its jobs."""
    from datasets.services import catalog, replicas
    from jobs.models import Job
    from jobs.services.brokerage import broker_defined_jobs
    from tasks.choices import TaskType
    from tasks.services.creation import submit_task

    example = SEED["example_task"]
    per_file = example["events_per_file"]
    lfns = [f"{example['input_dataset']}._{k:05d}.pool.root" for k in range(1, n_files + 1)]
    files = [{"lfn": lfn, "fsize": 500_000_000, "adler32": f"{k:08x}", "events": per_file}
             for k, lfn in enumerate(lfns)]  # fmt: skip
    catalog.register_new_dataset(user=operator, name=example["input_dataset"], files=files)
    holder = next(site for site in sites if site.status == "online")
    replicas.register_file_replicas(user=operator, site_name=holder.name, replicas=[{"lfn": lfn} for lfn in lfns])
    spec = {
        "name": example["name"], "project": example["project"], "input_dataset": example["input_dataset"],
        "output_dataset": example["name"], "output_formats": example["formats"],
        "transformation": example["transformation"], "trf_version": example["trf_version"],
        "sw_release": example["release"], "cpu_per_event": example["cpu_per_event"], "ram_mb": example["memory_mb"],
        "events_per_file": per_file, "n_files_per_job": 1, "job_parameters": "${IN} ${OUT} ${SN}",
    }  # fmt: skip
    Job.objects.filter(status="defined").update(brokered_at="2000-01-01T00:00:00Z")  # the task's jobs go first
    started = time.perf_counter()
    task, pandaids = submit_task(user=manager, spec=spec, task_type=TaskType.PRODUCTION)
    created = time.perf_counter() - started
    started = time.perf_counter()
    broker_defined_jobs(batch=len(pandaids), seconds=0)
    return task, len(pandaids), created, time.perf_counter() - started


def _pg_info():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0].split(" on ")[0]
        cursor.execute("SELECT name, current_setting(name) FROM unnest(%s::text[]) AS name",
                       [["shared_buffers", "synchronous_commit", "fsync", "jit"]])  # fmt: skip
        return version, cursor.fetchall()


def main(argv=None):
    args = parse_args(argv)
    os.environ["CELERY_BROKER_URL"] = "memory://"  # brokerage queued on commit goes nowhere: we run it here
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "0"
    fill.ensure_database(args.database_url)
    env.setup_django(args.database_url)
    from django.conf import settings
    from django.core.management import call_command
    from django.utils import timezone

    for line in sysinfo.machine_lines(*_pg_info()):
        print(line)
    call_command("migrate", verbosity=0, interactive=False)
    started = time.perf_counter()
    empty_tables()
    sites = create_sites(args.sites)
    operator, manager, analysts = people()
    quota_for_one_user(analysts[4])
    n_tasks = -(-args.jobs // JOBS_PER_TASK)
    inputs = register_inputs(operator, sites, n_tasks, JOBS_PER_TASK)
    tasks = create_tasks(manager, analysts, sites, n_tasks)
    insert_jobs(args.jobs, tasks, inputs, sites, timezone.now())
    vacuum_analyze()
    online = sum(1 for site in sites if site.status == "online")
    print(f"data: {args.jobs:,} defined jobs in {n_tasks} tasks, {len(sites)} sites ({online} online), "
          f"{len(inputs)} input datasets in the catalog; prepared in {time.perf_counter() - started:.1f} s")  # fmt: skip

    batch = args.batch or settings.PANDA["BROKERAGE_BATCH"]
    if args.profile:
        profile_first_pass(batch, args.profile)
    busy = sysinfo.background_busy()
    seconds, totals, spent = broker_all(batch)
    brokered = totals.get("jobs", 0)
    print(f"(before measuring, the machine was {busy:.0f} % busy with other work, of {sysinfo.cores() * 100} %)")
    print(f"brokerage: {brokered:,} jobs in {seconds:.1f} s in batches of up to {batch:,} = "
          f"{brokered / seconds:,.0f} jobs/s (target >= {TARGET_JOBS_PER_S:,}/s)")  # fmt: skip
    print("  decided: " + ", ".join(f"{name} {value:,}" for name, value in totals.items() if name != "jobs"))
    steps = [name for _, name in STEPS]
    other = seconds - sum(spent.get(name, 0.0) for name in steps)
    print("  time: " + ", ".join(f"{name} {spent.get(name, 0.0):.1f} s" for name in steps)
          + f", the rest (commits, grouping) {other:.1f} s")  # fmt: skip
    print("  of which the setupper's: " + ", ".join(f"{name} {spent.get(name, 0.0):.1f} s"
                                                   for _, name in SETUPPER_PARTS))  # fmt: skip
    with_input, local = locality_report()
    if with_input:
        print(f"  locality: {local:,} of {with_input:,} picked jobs with catalogued input went to a site holding "
              f"some of it ({100 * local / with_input:.0f} %)")  # fmt: skip
    decisions, contexts, decision_bytes, context_bytes = log_sizes()
    print(f"  brokerage log: {decisions:,} decisions ({decision_bytes / max(1, decisions):.0f} bytes each with "
          f"index), {contexts:,} shared contexts ({context_bytes / 1e6:.1f} MB)")  # fmt: skip
    task, n_jobs, created, brokered_s = task_creation(operator, manager, sites, args.task_files)
    print(f"task {task.name}: {args.task_files:,} input files -> {n_jobs:,} jobs created and split in "
          f"{created:.2f} s; brokered in {brokered_s:.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()

"""Bench data: sites, a million jobs with their files, and the reset between measurements.

Rows are generated server-side (INSERT ... SELECT ... FROM generate_series) so a
million jobs take seconds, not the hours an ORM loop would. Columns the bench does
not care about get the model's default, read from the model itself, so the fill
keeps working when other columns are added.
"""

import math
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

import psycopg2
from psycopg2 import sql

CLOUD_NAME = "BENCH"
SITE_PREFIX = "BENCH_SITE_"
CHUNK_JOBS = 100_000
# Far above what a run can send (6,000 activated per site by default): the dispatcher still
# counts each site's running jobs, as in production, but never refuses for the limit.
SITE_MAX_RUNNING_JOBS = 1_000_000
ACTIVATED_DELAY = "interval '10 minutes'"  # activated jobs were activated 10 min after creation

JOB_SOURCE = """
WITH base AS (
    SELECT g, mod(g * %(stride)s, %(n_jobs)s) AS p, 100000 + g / 500 AS task,
           random() AS r_age, random() AS r_start, random() AS r_run, random() AS r_beat,
           random() AS r_label, random() AS r_prio, random() AS r_ram, random() AS r_disk
    FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
), kinds AS (
    SELECT base.*, CASE WHEN p < %(n_activated)s THEN 'activated'
                        WHEN p < %(end_defined)s THEN 'defined'
                        WHEN p < %(end_running)s THEN 'running'
                        WHEN mod(p, 5) = 0 THEN 'failed' ELSE 'finished' END AS state
    FROM base
), created AS (
    -- Queued jobs are recent; finished and failed ones spread over the last 30 days.
    SELECT kinds.*, %(now)s::timestamptz - interval '1 hour' - r_age * interval '1 day'
           * CASE state WHEN 'activated' THEN 3 WHEN 'defined' THEN 1 WHEN 'running' THEN 2 ELSE 30 END AS created
    FROM kinds
), started AS (
    SELECT created.*, CASE WHEN state IN ('running', 'finished', 'failed')
           THEN LEAST(created + interval '5 minutes' + r_start * interval '6 hours', %(now)s) END AS started
    FROM created
), ended AS (
    SELECT started.*, CASE WHEN state IN ('finished', 'failed')
           THEN LEAST(started + interval '10 minutes' + r_run * interval '12 hours', %(now)s) END AS ended
    FROM started
), stamped AS (
    SELECT ended.*, CASE state WHEN 'activated' THEN created + interval '10 minutes'
                               WHEN 'defined' THEN created
                               WHEN 'running' THEN GREATEST(started, %(now)s - r_beat * interval '30 minutes')
                               ELSE ended END AS modified
    FROM ended
)
"""
JOB_COLUMNS = {
    "pandaid": "g",
    "job_name": "'bench.' || task || '._' || lpad(g::text, 8, '0')",
    "job_definition_id": "task",
    "jobset_id": "task",
    "task_id": "task",
    "prod_source_label": "CASE WHEN r_label < 0.7 THEN 'managed' ELSE 'user' END",
    "processing_type": "CASE WHEN r_label < 0.7 THEN 'simul' ELSE 'panda-client-1.5.9-jedi-run' END",
    "transformation": "'https://pandaserver.example/trf/user/runGen-00-00-02'",
    "job_parameters": "'--inputEVNTFile=EVNT.' || task || '._' || lpad(g::text, 8, '0') || '.pool.root.1 --maxEvents=1000'",
    "homepackage": "'AtlasOffline/23.0.53'",
    "sw_release": "'Atlas-23.0.53'",
    "cmt_config": "'x86_64-el9-gcc13-opt'",
    "prod_user_id": "'/DC=ch/DC=cern/OU=Users/CN=benchuser' || mod(task, 97)",
    "prod_user_name": "'benchuser' || mod(task, 97)",
    "vo": "'atlas'",
    "computing_site_id": "CASE WHEN state = 'defined' THEN NULL ELSE (%(site_ids)s::bigint[])[1 + mod(p, %(n_sites)s)] END",
    "cloud": "%(cloud)s",
    "core_count": "CASE WHEN r_label < 0.7 AND mod(g, 4) = 0 THEN 8 ELSE 1 END",
    "min_ram_count": "1000 * (1 + floor(r_ram * 3))::int",
    "max_disk_count": "1000 * (2 + floor(r_disk * 8))::int",
    "max_walltime": "86400",
    "assigned_priority": "floor(r_prio * 1000)::int",
    "current_priority": "floor(r_prio * 1000)::int",
    "status": "state",
    "creation_time": "created",
    "modification_time": "modified",
    "state_change_time": "CASE state WHEN 'running' THEN started ELSE modified END",
    "start_time": "started",
    "end_time": "ended",
    "n_sent": "CASE WHEN started IS NULL THEN 0 ELSE 1 END",
    "modification_host": "CASE WHEN started IS NULL THEN '' ELSE 'wn' || mod(g, 997) || '.bench.example' END",
    "trans_exit_code": "CASE state WHEN 'finished' THEN 0 WHEN 'failed' THEN 65 END",
    "exe_error_code": "CASE state WHEN 'failed' THEN 65 ELSE 0 END",
    "exe_error_diag": "CASE state WHEN 'failed' THEN 'Non-zero return code from runGen (65)' ELSE '' END",
    "cpu_consumption_time": "CASE WHEN ended IS NOT NULL THEN extract(epoch FROM ended - started)::bigint END",
    "n_events": "CASE state WHEN 'finished' THEN 1000 ELSE 0 END",
    "n_input_files": "1",
}
FILE_SOURCE = """
FROM jobs_job AS j CROSS JOIN (VALUES ('log'), ('input'), ('output')) AS f(kind)
WHERE j.pandaid BETWEEN %(first)s AND %(last)s AND (f.kind = 'log' OR j.status = 'activated')
"""
FILE_DATASET = "'mc23_13p6TeV.' || j.task_id || '.' || f.kind"
FILE_COLUMNS = {
    "job_id": "j.pandaid",
    "type": "f.kind",
    "lfn": "CASE f.kind WHEN 'log' THEN 'log.' WHEN 'input' THEN 'EVNT.' ELSE 'HITS.' END"
    " || j.task_id || '._' || lpad(j.pandaid::text, 8, '0')"
    " || CASE f.kind WHEN 'log' THEN '.job.log.tgz' ELSE '.pool.root.1' END",
    "guid": "md5(f.kind || j.pandaid)::uuid::text",
    "scope": "'mc23_13p6TeV'",
    "dataset": FILE_DATASET,
    "prod_dblock": f"CASE f.kind WHEN 'input' THEN {FILE_DATASET} ELSE '' END",
    "dispatch_dblock": f"CASE f.kind WHEN 'input' THEN {FILE_DATASET} || '_dis' ELSE '' END",
    "destination_dblock": f"CASE f.kind WHEN 'input' THEN '' ELSE {FILE_DATASET} || '_sub0' END",
    "fsize": "CASE f.kind WHEN 'log' THEN 500000 + mod(j.pandaid * 7919, 1000000)"
    " ELSE 1000000000 + mod(j.pandaid * 104729, 1000000000) END",
    "checksum": "'ad:' || substr(md5(j.pandaid || f.kind), 1, 8)",
    "status": "CASE f.kind WHEN 'input' THEN 'ready' ELSE 'unknown' END",
}
# Jobs a measurement dispatched go back to exactly the state the fill gave them,
# and the JobStatusLog rows the full getJob wrote for them are deleted.
RESET_SQL = f"""
WITH moved AS (
    UPDATE jobs_job SET status = 'activated', n_sent = 0, modification_host = '',
           modification_time = creation_time + {ACTIVATED_DELAY},
           state_change_time = creation_time + {ACTIVATED_DELAY}
    WHERE status = 'sent' AND computing_site_id = ANY(%(site_ids)s::bigint[])
    RETURNING pandaid
), logs AS (
    DELETE FROM jobs_jobstatuslog AS l USING moved WHERE l.job_id = moved.pandaid AND l.new_status = 'sent'
    RETURNING 1
)
SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM logs)
"""
COUNTS_SQL = """
SELECT count(*),
       count(*) FILTER (WHERE status IN ('activated', 'sent') AND computing_site_id = ANY(%(site_ids)s::bigint[])),
       count(DISTINCT computing_site_id) FILTER (WHERE status IN ('activated', 'sent'))
FROM jobs_job
"""


def ensure_database(database_url):
    """Create the bench database if it is missing (the server's maintenance db is `postgres`)."""
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    admin = psycopg2.connect(
        host=parts.hostname, port=parts.port or 5432, user=parts.username, password=parts.password, dbname="postgres"
    )
    admin.autocommit = True  # CREATE DATABASE cannot run in a transaction
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                print(f"created database {name}")
    finally:
        admin.close()
    return name


def ensure_sites(n_sites):
    """One cloud and `n_sites` online sites that trust unauthenticated pilots; returns them in order."""
    from sites.models import Cloud, PilotActivity, Site

    cloud, _ = Cloud.objects.get_or_create(name=CLOUD_NAME, defaults={"description": "benchmark cloud"})
    sites = []
    for number in range(1, n_sites + 1):
        site, _ = Site.objects.update_or_create(
            name=f"{SITE_PREFIX}{number:03d}",
            defaults={"cloud": cloud, "status": "online", "trust_unauthenticated_pilots": True,
                      "max_memory_mb": 4000, "max_disk_mb": 20000, "tier": 2,
                      "max_running_jobs": SITE_MAX_RUNNING_JOBS},
        )  # fmt: skip
        PilotActivity.objects.get_or_create(site=site)
        sites.append(site)
    return sites


def data_matches(n_jobs, n_activated, site_ids):
    """True when the database already holds this fill (jobs a run left `sent` count as activated)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(COUNTS_SQL, {"site_ids": site_ids})
        total, queued, used_sites = cursor.fetchone()
    return total == n_jobs and queued == n_activated and used_sites == len(site_ids)


def _insert_sql(model, expressions, source_head, source_tail):
    """INSERT INTO <model table> (every column set or NOT NULL) <source_head> SELECT ... <source_tail>.

    Columns missing from `expressions` get the model default as a bound parameter;
    nullable ones are left NULL and a missing primary key comes from its identity. A new NOT NULL column without a default fails loudly.
    """
    from django.db import connection

    columns, selects, params = [], [], {}
    for field in model._meta.concrete_fields:
        if field.column in expressions:
            selects.append(expressions[field.column])
        elif field.null or field.primary_key:
            continue  # NULL, or the identity column numbers the row
        else:
            default = field.get_db_prep_save(field.get_default(), connection)
            if default is None:
                raise ValueError(f"{model.__name__}.{field.name} is NOT NULL without default: set it in bench/fill.py")
            params[f"default_{field.column}"] = default
            selects.append(f"%(default_{field.column})s")
        columns.append(connection.ops.quote_name(field.column))
    table = connection.ops.quote_name(model._meta.db_table)
    text = f"INSERT INTO {table} ({', '.join(columns)}) {source_head} SELECT {', '.join(selects)} {source_tail}"
    return text, params


def _coprime_stride(n):
    """A stride near n/phi, coprime with n: g -> g*stride mod n then scatters statuses over all PandaIDs."""
    stride = max(1, int(n * 0.6180339887))
    while math.gcd(stride, n) != 1:
        stride += 1
    return stride


def _job_params(n_jobs, n_activated, sites):
    queued_other = (n_jobs - n_activated) // 20  # ~5 % defined and ~5 % running besides the activated ones
    return {
        "n_jobs": n_jobs,
        "stride": _coprime_stride(n_jobs),
        "n_activated": n_activated,
        "end_defined": n_activated + queued_other,
        "end_running": n_activated + 2 * queued_other,
        "now": datetime.now(UTC),
        "site_ids": [site.pk for site in sites],
        "n_sites": len(sites),
        "cloud": CLOUD_NAME,
    }


def fill(n_jobs, n_activated, sites):
    """Replace all jobs by the bench set, in chunks (one statement and commit each); returns seconds."""
    from django.db import connection

    from jobs.models import Job, JobFile

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE jobs_job RESTART IDENTITY CASCADE")
    job_sql, job_defaults = _insert_sql(Job, JOB_COLUMNS, JOB_SOURCE, "FROM stamped")
    file_sql, file_defaults = _insert_sql(JobFile, FILE_COLUMNS, "", FILE_SOURCE)
    params = _job_params(n_jobs, n_activated, sites)
    for first in range(1, n_jobs + 1, CHUNK_JOBS):
        chunk = {"first": first, "last": min(first + CHUNK_JOBS - 1, n_jobs)}
        with connection.cursor() as cursor:
            cursor.execute(job_sql, {**params, **job_defaults, **chunk})
            cursor.execute(file_sql, {**file_defaults, **chunk})
        print(f"  filled jobs {chunk['first']:,}..{chunk['last']:,}  ({time.perf_counter() - started:.1f} s)")
    _sync_identity(Job, "pandaid")
    _sync_identity(JobFile, "id")
    vacuum_analyze()
    return time.perf_counter() - started


def _sync_identity(model, column):
    """Rows were inserted with explicit ids; move the identity past them so later inserts do not collide."""
    from django.db import connection
    from django.db.models import Max

    highest = model.objects.aggregate(top=Max(column))["top"] or 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT setval(pg_get_serial_sequence(%s, %s), %s)", [model._meta.db_table, column, highest])


def vacuum_analyze():
    """Autovacuum may be off: refresh statistics and clear dead rows ourselves so every run plans alike."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("jobs_job", "jobs_jobfile", "jobs_jobstatuslog", "sites_pilotactivity"):
            cursor.execute(f"VACUUM (ANALYZE) {connection.ops.quote_name(table)}")


def reset_dispatched(sites):
    """Put every job a measurement sent back to activated; returns (jobs reset, status-log rows deleted)."""
    from django.db import connection, transaction

    from sites.models import PilotActivity

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(RESET_SQL, {"site_ids": [site.pk for site in sites]})
        moved, logs = cursor.fetchone()
        PilotActivity.objects.filter(site__in=sites).update(
            last_contact_at=None, last_node="", last_getjob_at=None, last_job_sent_at=None,
            getjob_requests=0, getjob_empty=0, jobs_sent=0,
        )  # fmt: skip
    return moved, logs


def count_sent(sites):
    from jobs.models import Job

    return Job.objects.filter(status="sent", computing_site__in=sites).count()

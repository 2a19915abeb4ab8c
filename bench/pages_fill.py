"""Data for bench/pages.py: the seed grid, a million jobs over 30 days and a 2006-size catalog.

Everything is generated server-side (INSERT ... SELECT over generate_series, or over
unnest of parameter arrays for the few things named in Python), so the fill takes
minutes. Values only ever reach the database as bound parameters; the SQL text is
constant. Columns the fill does not set get the model's default (bench.fill._insert_sql),
so it keeps working when other columns are added.

The shape, chosen to look like a production PanDA at the 2006 scale:

- jobs: `--jobs` over `--days` days, `--recent-per-day` per day in the last `--recent-days`
  (150,000/day: a 12 h window holds ~75,000 jobs) and the rest spread thinly before; PandaIDs
  grow with creation time. Each job's fate is decided by its own queue wait and run length
  against "now": the newest ones are queued (defined/assigned/waiting/activated/sent), running,
  starting, holding or transferring; older ones finished (~87 %), failed (~10 %, with error
  codes of jobs/errorcodes.py and diagnostics carrying numbers, file names and paths),
  cancelled or closed. Tasks of ~500 jobs, 70 % managed / 28 % user / 2 % ptest, ~500 users
  (a few production accounts, the analysis users skewed so some submit much more), 1-3 sites
  per task weighted to the Tier-1s, a few hundred worker nodes per site, retries with parent_id.
- the state history (JobStatusLog, ~5 rows a job) and the files (JobFile: 1-3 inputs that are
  real catalog files, an output and a log in catalog datasets) of the jobs of the last
  `--detail-days` days;
- the catalog: `--datasets` datasets in the seed's categories (mc, csc, user, dispatch and
  destination blocks, ...) with `--files` files (one dataset of 10,000, bench/catalog.py's
  sizes), versions, memberships, 250 containers, and replicas at 2 sites per dataset (the
  first at a Tier-1 disk, one in ten of the second copies incomplete).
- then bench/pages_fill_flow.py: tasks (of these jobs), subscriptions, transfers, channel stats, operations history.
"""

import json
import time
import zlib
from datetime import UTC, datetime, timedelta

from bench import catalog, pages_fill_flow
from bench.fill import _insert_sql, _sync_identity

JOB_CHUNK = 100_000
TASK_SPAN = 20_000  # consecutive PandaIDs (about 3 h at 150,000 jobs a day) ...
TASKS_PER_SPAN = 40  # ... shared by this many tasks: every task runs for hours, interleaved with others
TASK_BASE = 30_000_000
PRODUCTION_ACCOUNTS = ["gangarobot", "atlas-mc-prod", "atlas-reprocessing", "atlas-valid", "atlas-t0",
                       "atlas-groupprod", "atlas-dpd", "atlas-evgen"]  # fmt: skip
N_USERS = 500
CONTAINERS = 250
CONTAINER_MEMBERS = 4
JOB_TABLES = ["jobs_jobstatuslog", "jobs_jobfile", "jobs_jobreport", "jobs_job"]
CATALOG_TABLES = catalog.CATALOG_TABLES
VACUUM_TABLES = [*JOB_TABLES, *CATALOG_TABLES, "sites_site", "sites_cloud", "sites_pilotactivity", "auth_user",
                 *pages_fill_flow.FLOW_TABLES]  # fmt: skip

# ----------------------------------------------------------------------------------- jobs

JOB_SOURCE = """
WITH base AS (
    SELECT g, %(task_base)s + (g / %(task_span)s) * %(tasks_per_span)s + mod(g * 7, %(tasks_per_span)s) AS task,
           random() AS r_wait, random() AS r_run, random() AS r_fate, random() AS r_err,
           random() AS r_live, random() AS r_beat, random() AS r_x
    FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
), timed AS (
    -- PandaIDs grow with creation time: thin history first, then the recent days at full rate.
    SELECT base.*, mod(task * 7919, 100) AS task_pct, mod(task * 104729, 1000003)::float8 / 1000003 AS task_h,
           CASE WHEN g <= %(n_old)s
                THEN %(now)s::timestamptz - %(days)s * interval '1 day' + (g - 1) * %(old_step)s * interval '1 second'
                ELSE %(now)s::timestamptz - %(recent_days)s * interval '1 day'
                     + (g - %(n_old)s) * %(recent_step)s * interval '1 second' END AS created
    FROM base
), kind AS (
    SELECT timed.*,
           CASE WHEN task_pct < 70 THEN 'managed' WHEN task_pct < 98 THEN 'user' ELSE 'ptest' END AS label,
           CASE WHEN task_pct < 70 THEN 2 + mod(task, %(n_prod)s - 1)
                WHEN task_pct < 98 THEN %(n_prod)s + 1 + floor(task_h * task_h * (%(n_users)s - %(n_prod)s))::int
                ELSE 1 END AS who,
           1 + mod(task * 31 + mod(g, 3) * 17, %(n_slots)s)::int AS slot,
           CASE WHEN r_fate < 0.10 THEN 'failed' WHEN r_fate < 0.12 THEN 'cancelled'
                WHEN r_fate < 0.13 THEN 'closed' ELSE 'finished' END AS fate
    FROM timed
), timeline AS MATERIALIZED (
    SELECT kind.*, created + (2 + 118 * r_wait * r_wait) * interval '1 minute' AS t_start,
           created + (2 + 118 * r_wait * r_wait) * interval '1 minute'
           + CASE label WHEN 'managed' THEN 30 + 690 * r_run WHEN 'user' THEN 10 + 230 * r_run ELSE 5 + 15 * r_run END
             * CASE fate WHEN 'cancelled' THEN r_x ELSE 1 END * interval '1 minute' AS t_end,
           (%(user_names)s::text[])[who] AS uname, (%(slot_names)s::text[])[slot] AS site_name
    FROM kind
), stated AS (
    SELECT timeline.*, CASE
        WHEN t_start > %(now)s THEN CASE
            WHEN t_start - %(now)s < interval '1 minute' THEN 'sent'
            WHEN r_live < 0.06 THEN 'defined' WHEN r_live < 0.10 THEN 'assigned'
            WHEN r_live < 0.12 THEN 'waiting' ELSE 'activated' END
        WHEN fate = 'closed' THEN 'closed'
        WHEN t_end > %(now)s THEN CASE WHEN %(now)s - t_start < interval '3 minutes' THEN 'starting' ELSE 'running' END
        WHEN fate IN ('finished', 'failed') AND %(now)s - t_end < interval '20 minutes' AND r_live < 0.3 THEN 'holding'
        WHEN fate IN ('finished', 'failed') AND %(now)s - t_end < interval '20 minutes' AND r_live < 0.4
             THEN 'transferring'
        ELSE fate END AS state
    FROM timeline
), stamped AS MATERIALIZED (
    SELECT stated.*, CASE
        WHEN state IN ('finished', 'failed', 'cancelled') THEN LEAST(t_end + (1 + 4 * r_beat) * interval '1 minute', %(now)s)
        WHEN state = 'closed' THEN t_start
        WHEN state IN ('holding', 'transferring') THEN t_end
        WHEN state = 'running' THEN GREATEST(t_start, %(now)s - r_beat * interval '30 minutes')
        WHEN state = 'starting' THEN t_start
        WHEN state = 'sent' THEN GREATEST(created, %(now)s - r_beat * interval '1 minute')
        WHEN state = 'activated' THEN LEAST(created + interval '1 minute', %(now)s)
        ELSE LEAST(created + r_beat * interval '5 minutes', %(now)s) END AS modified,
        state IN ('starting', 'running', 'holding', 'transferring', 'finished', 'failed', 'cancelled') AS started,
        state IN ('finished', 'failed', 'cancelled', 'closed') AS ended,
        CASE WHEN state <> 'failed' THEN ''
             WHEN r_err < 0.30 THEN 'stagein' WHEN r_err < 0.45 THEN 'stageout' WHEN r_err < 0.55 THEN 'looping'
             WHEN r_err < 0.60 THEN 'pilot' WHEN r_err < 0.80 THEN 'exe65' WHEN r_err < 0.85 THEN 'exe137'
             WHEN r_err < 0.93 THEN 'heartbeat' WHEN r_err < 0.97 THEN 'adder' ELSE 'expired' END AS err
    FROM stated
)
"""
JOB_COLUMNS = {
    "pandaid": "g",
    "job_name": "CASE label WHEN 'user' THEN 'user.' || uname || '.' || task || '.MyAnalysis._' || lpad(g::text, 9, '0')"
    " WHEN 'ptest' THEN 'ptest.' || site_name || '.' || g"
    " ELSE 'mc11.' || lpad(mod(task, 999999)::text, 6, '0') || '.simul.' || task || '._' || lpad(g::text, 9, '0') END",
    "job_definition_id": "task",
    "jobset_id": "%(jobset_base)s + (task - %(task_base)s) * %(jobsets_per_task)s"
    " + mod(g, %(task_span)s) * %(jobsets_per_task)s / %(task_span)s",
    "task_id": "task",
    "prod_source_label": "label",
    "processing_type": "CASE label WHEN 'user' THEN (ARRAY['pathena', 'prun'])[1 + mod(task, 2)]"
    " WHEN 'ptest' THEN 'gangarobot'"
    " ELSE (ARRAY['simul', 'evgen', 'reprocessing', 'pile', 'merge', 'recon'])[1 + mod(task, 6)] END",
    "transformation": "CASE label WHEN 'managed' THEN 'csc.simul.trf'"
    " ELSE 'https://pandaserver.example.org:25443/trf/user/runAthena-00-00-12' END",
    "job_parameters": "'--inputFile=EVNT.' || task || '._' || lpad(mod(g, 99999)::text, 6, '0')"
    " || '.pool.root.1 --maxEvents=1000 --randomSeed=' || g",
    "homepackage": "'AtlasProduction/11.0.' || mod(task, 5)",
    "sw_release": "'Atlas-11.0.' || mod(task, 5)",
    "cmt_config": "'i686-slc3-gcc323-opt'",
    "owner_id": "(%(user_ids)s::bigint[])[who]",
    "prod_user_id": "'/DC=org/DC=doegrids/OU=People/CN=' || uname",
    "prod_user_name": "uname",
    "vo": "'atlas'",
    "computing_site_id": "CASE WHEN state = 'defined' THEN NULL ELSE (%(slot_ids)s::bigint[])[slot] END",
    "cloud": "CASE WHEN state = 'defined' THEN '' ELSE (%(slot_clouds)s::text[])[slot] END",
    "core_count": "CASE WHEN label = 'managed' AND mod(task, 3) = 0 THEN 8 ELSE 1 END",
    "min_ram_count": "CASE WHEN label = 'managed' AND mod(task, 3) = 0 THEN 16000 ELSE 2000 END",
    "max_disk_count": "5000 * (1 + mod(task, 4))",
    "max_walltime": "86400",
    "assigned_priority": "CASE label WHEN 'managed' THEN 900 + mod(task, 200) WHEN 'user' THEN 1000 ELSE 5000 END",
    "current_priority": "CASE label WHEN 'managed' THEN 900 + mod(task, 200)"
    " WHEN 'user' THEN 1000 - mod(g, 500) ELSE 5000 END",
    "attempt_nr": "1 + (r_x < 0.08)::int + (r_x < 0.02)::int",
    "parent_id": "CASE WHEN r_x < 0.08 AND g > 1000 THEN g - 1000 END",
    "status": "state",
    "job_sub_status": "''",
    "creation_time": "created",
    "modification_time": "modified",
    "state_change_time": "CASE state WHEN 'running' THEN t_start ELSE modified END",
    "start_time": "CASE WHEN started THEN t_start END",
    "end_time": "CASE WHEN state = 'closed' THEN t_start WHEN ended THEN t_end END",
    "n_sent": "CASE WHEN started OR state = 'sent' THEN 1 ELSE 0 END",
    "modification_host": "CASE WHEN started OR state = 'sent' THEN 'wn' || lpad(mod(g * 13, (%(slot_wns)s::int[])[slot])::text,"
    " 4, '0') || '.' || lower(site_name) || '.example.org' ELSE '' END",
    "pilot_id": "CASE WHEN started THEN 'https://' || lower(site_name) || '-ce.example.org/' || (10000000 + g) ELSE '' END",
    "pilot_version": "CASE WHEN started THEN 'PICARD 03e' ELSE '' END",
    "batch_id": "CASE WHEN started THEN (10000000 + mod(g * 7919, 90000000))::text ELSE '' END",
    "trans_exit_code": "CASE WHEN state = 'finished' THEN 0 WHEN err = 'exe65' THEN 65 WHEN err = 'exe137' THEN 137 END",
    "pilot_error_code": "CASE err WHEN 'stagein' THEN 1099 WHEN 'stageout' THEN 1137 WHEN 'looping' THEN 1150"
    " WHEN 'pilot' THEN 1008 ELSE 0 END",
    "pilot_error_diag": "CASE err"
    " WHEN 'stagein' THEN 'Failed to stage-in file EVNT.' || task || '._' || lpad(mod(g * 7, 99999)::text, 6, '0')"
    " || '.pool.root.1 from ' || site_name || 'DISK: copy command timed out after ' || (600 + mod(g, 3000)) || ' s'"
    " WHEN 'stageout' THEN 'Put error: failed to transfer HITS.' || task || '._' || lpad(mod(g, 99999)::text, 6, '0')"
    " || '.pool.root.1 to ' || site_name || '_DATADISK: checksum mismatch (ad:' || substr(md5(g::text), 1, 8)"
    " || ' != ad:' || substr(md5((g + 1)::text), 1, 8) || ')'"
    " WHEN 'looping' THEN 'Looping job killed by pilot: no output file update for ' || (7200 + mod(g * 7, 5000)) || ' s'"
    " WHEN 'pilot' THEN 'General pilot error: write to /scratch/condor/dir_' || mod(g * 31, 99999)"
    " || '/pilot3/payload.stdout failed: No space left on device' ELSE '' END",
    "exe_error_code": "CASE err WHEN 'exe65' THEN 65 WHEN 'exe137' THEN 137 ELSE 0 END",
    "exe_error_diag": "CASE err"
    " WHEN 'exe65' THEN 'Non-zero return code from ' || CASE label WHEN 'managed' THEN 'csc.simul.trf' ELSE 'athena.py' END"
    " || ' (65); G4Exception at event ' || mod(g, 1000) || ' in /srv/workDir/tmp.' || substr(md5(g::text), 1, 10)"
    " WHEN 'exe137' THEN 'Transform received signal SIGKILL: payload RSS ' || (2000 + mod(g, 6000))"
    " || ' MB above the 2000 MB limit' ELSE '' END",
    "job_dispatcher_error_code": "CASE err WHEN 'heartbeat' THEN 100 ELSE 0 END",
    "job_dispatcher_error_diag": "CASE err WHEN 'heartbeat' THEN 'lost heartbeat : '"
    " || to_char(t_end, 'YYYY-MM-DD HH24:MI:SS') ELSE '' END",
    "ddm_error_code": "CASE err WHEN 'adder' THEN 200 ELSE 0 END",
    "ddm_error_diag": "CASE err WHEN 'adder' THEN 'adder: output file HITS.' || task || '._'"
    " || lpad(mod(g, 99999)::text, 6, '0') || '.pool.root.1 is missing from the pilot report' ELSE '' END",
    "task_buffer_error_code": "CASE WHEN err = 'expired' THEN 102 WHEN state = 'cancelled' THEN 100"
    " WHEN state = 'closed' THEN 105 ELSE 0 END",
    "task_buffer_error_diag": "CASE WHEN err = 'expired' THEN 'expired after ' || (3 + mod(g, 5)) || ' days'"
    " WHEN state = 'cancelled' THEN 'killed by ' || uname"
    " WHEN state = 'closed' THEN 'reassigned by JEDI: ' || site_name || ' excluded by brokerage' ELSE '' END",
    "cpu_consumption_time": "CASE WHEN started AND ended"
    " THEN (extract(epoch FROM t_end - t_start) * 0.8 * CASE WHEN label = 'managed' AND mod(task, 3) = 0"
    " THEN 8 ELSE 1 END)::bigint END",
    "cpu_consumption_unit": "CASE WHEN started AND ended THEN 's' ELSE '' END",
    "max_rss": "CASE WHEN started AND ended THEN 800000 + mod(g * 7919, 1500000) END",
    "max_vmem": "CASE WHEN started AND ended THEN 2 * (800000 + mod(g * 7919, 1500000)) END",
    "n_events": "CASE WHEN state = 'finished' THEN CASE label WHEN 'managed' THEN 1000 ELSE 100 + mod(g, 5000) END"
    " ELSE 0 END",
    "n_input_files": "1 + mod(g, 3)",
}

STATUS_LOG_SOURCE = """
FROM jobs_job AS j CROSS JOIN LATERAL (VALUES
    ('', 'defined', j.creation_time, 'jedi', 'task ' || j.task_id, true),
    ('defined', 'activated', LEAST(j.creation_time + interval '1 minute', j.modification_time), 'brokerage',
     'brokered to ' || j.cloud, j.status NOT IN ('defined', 'assigned', 'waiting')),
    ('defined', j.status, j.modification_time, 'brokerage', 'waiting for input', j.status IN ('assigned', 'waiting')),
    ('activated', 'sent', COALESCE(j.start_time - interval '1 minute', j.modification_time),
     'pilot@' || j.modification_host, '', j.status = 'sent' OR j.start_time IS NOT NULL),
    ('sent', CASE j.status WHEN 'starting' THEN 'starting' ELSE 'running' END, j.start_time,
     'pilot@' || j.modification_host, '', j.start_time IS NOT NULL),
    ('running', 'holding', COALESCE(j.end_time, j.state_change_time), 'pilot@' || j.modification_host, '',
     j.status IN ('holding', 'transferring', 'finished', 'failed')),
    ('holding', 'transferring', j.modification_time, 'adder', '', j.status = 'transferring'),
    ('holding', j.status, j.modification_time, 'adder', '', j.status IN ('finished', 'failed')),
    ('running', 'cancelled', j.modification_time, j.prod_user_name, 'killed by a person', j.status = 'cancelled'),
    ('activated', 'closed', j.modification_time, 'jedi', j.task_buffer_error_diag, j.status = 'closed')
) AS s(old, new, at, actor, reason, keep)
WHERE j.pandaid BETWEEN %(first)s AND %(last)s AND s.keep
"""
STATUS_LOG_COLUMNS = {
    "job_id": "j.pandaid",
    "old_status": "s.old",
    "new_status": "s.new",
    "changed_at": "s.at",
    "actor": "left(s.actor, 150)",
    "reason": "s.reason",
}

# Inputs are real catalog files of the task's input dataset; the output and the log go to the task's
# output dataset (new names: a job's outputs are registered only when it ends).
JOB_FILE_SOURCE = """
FROM jobs_job AS j
JOIN datasets_dataset AS din ON din.id = %(reg_first)s + mod(j.task_id * 7919, %(n_reg)s)
JOIN datasets_dataset AS dout ON dout.id = %(reg_first)s + mod(j.task_id * 104729 + 1, %(n_reg)s)
JOIN datasets_dataset AS dis ON dis.id = %(dis_first)s + mod(j.task_id, %(n_dis)s)
JOIN datasets_dataset AS sub ON sub.id = %(sub_first)s + mod(j.task_id * 31, %(n_sub)s)
CROSS JOIN LATERAL (VALUES ('input', 1), ('input', 2), ('input', 3), ('output', 1), ('log', 1)) AS f(kind, k)
WHERE j.pandaid BETWEEN %(first)s AND %(last)s AND (f.kind <> 'input' OR f.k <= j.n_input_files)
"""
JOB_FILE_COLUMNS = {
    "job_id": "j.pandaid",
    "type": "f.kind",
    "lfn": "CASE f.kind WHEN 'input' THEN din.name || '._' || lpad((1 + mod(j.pandaid * 3 + f.k, din.n_files))::text, 6, '0')"
    " || '.pool.root.1' WHEN 'output' THEN dout.name || '._' || j.pandaid || '.pool.root.1'"
    " ELSE dout.name || '.log._' || j.pandaid || '.job.log.tgz' END",
    "guid": "md5(f.kind || j.pandaid || f.k)::uuid::text",
    "scope": "CASE f.kind WHEN 'input' THEN din.series ELSE dout.series END",
    "dataset": "CASE f.kind WHEN 'input' THEN din.name ELSE dout.name END",
    "prod_dblock": "CASE f.kind WHEN 'input' THEN din.name ELSE '' END",
    "dispatch_dblock": "CASE f.kind WHEN 'input' THEN dis.name ELSE '' END",
    "destination_dblock": "CASE f.kind WHEN 'input' THEN '' ELSE sub.name END",
    "fsize": "CASE f.kind WHEN 'log' THEN 500000 + mod(j.pandaid * 7919, 1000000)"
    " ELSE 100000000 + mod(j.pandaid * 104729 + f.k, 2000000000) END",
    "checksum": "'ad:' || substr(md5(j.pandaid || f.kind || f.k), 1, 8)",
    "status": "CASE WHEN f.kind = 'input' THEN CASE WHEN j.status IN ('defined', 'assigned', 'waiting') THEN 'pending'"
    " ELSE 'ready' END WHEN j.status = 'finished' THEN 'ready' WHEN j.status = 'failed' THEN 'failed' ELSE 'unknown' END",
    "attempt_nr": "j.attempt_nr",
}

# ----------------------------------------------------------------------------------- catalog

DATASET_SOURCE = """
FROM unnest(%(names)s::text[], %(kinds)s::text[], %(states)s::text[], %(owners)s::bigint[], %(versions)s::int[],
            %(sizes)s::int[], %(ages)s::float8[], %(series)s::text[], %(numbers)s::text[], %(physics)s::text[],
            %(stages)s::text[], %(formats)s::text[], %(releases)s::text[], %(categories)s::text[])
     WITH ORDINALITY AS t(name, kind, state, owner, version, size, age_days, series, number, physics, stage, format,
                          release, category, position)
ORDER BY t.position
"""
DATASET_COLUMNS = {
    "name": "t.name",
    "duid": "gen_random_uuid()",
    "kind": "t.kind",
    "state": "t.state",
    "owner_id": "t.owner",
    "latest_version": "t.version",
    "n_files": "t.size",
    "bytes": "0",
    "created_at": "%(now)s::timestamptz - t.age_days * interval '1 day'",
    "modified_at": "%(now)s::timestamptz - t.age_days * 0.5 * interval '1 day'",
    "series": "t.series",
    "number": "t.number",
    "physics": "t.physics",
    "stage": "t.stage",
    "format": "t.format",
    "release": "t.release",
    "category": "t.category",
}
FILE_SOURCE = """
FROM datasets_dataset AS d CROSS JOIN LATERAL generate_series(1, d.n_files) AS n
WHERE d.id BETWEEN %(first)s AND %(last)s AND d.kind <> 'container'
"""
FILE_COLUMNS = {
    "lfn": "d.name || '._' || lpad(n::text, 6, '0') || '.pool.root.1'",
    "guid": "gen_random_uuid()",
    "fsize": "50000000 + mod(d.id * 7919 + n * 104729, 3950000000)::bigint",
    "adler32": "substr(md5(d.id || '.' || n), 1, 8)",
    "md5": "''",
    "events": "CASE WHEN d.format IN ('RAW', 'HIST') THEN NULL ELSE 250 + mod(n, 5) * 50 END",
    "origin_dataset_id": "d.id",
    "created_at": "d.created_at + n * interval '10 seconds'",
}
# Datasets at their latest version 2 received their last fifth of files in version 2.
MEMBERSHIP_SQL = """
INSERT INTO datasets_datasetfile (dataset_id, file_id, version_added)
SELECT f.origin_dataset_id, f.id,
       CASE WHEN d.latest_version >= 2 AND f.rank > d.n_files * 0.8 THEN 2 ELSE 1 END
FROM (SELECT id, origin_dataset_id, row_number() OVER (PARTITION BY origin_dataset_id ORDER BY id) AS rank
      FROM datasets_file) AS f
JOIN datasets_dataset AS d ON d.id = f.origin_dataset_id
"""
DATASET_TOTALS_SQL = """
UPDATE datasets_dataset AS d SET n_files = t.n, bytes = t.b
FROM (SELECT m.dataset_id, count(*) AS n, sum(f.fsize) AS b
      FROM datasets_datasetfile AS m JOIN datasets_file AS f ON f.id = m.file_id GROUP BY m.dataset_id) AS t
WHERE d.id = t.dataset_id
"""
VERSION_SOURCE = """
FROM datasets_dataset AS d CROSS JOIN LATERAL generate_series(1, d.latest_version) AS v
LEFT JOIN (SELECT m.dataset_id, m.version_added, count(*) AS n, sum(f.fsize) AS b
           FROM datasets_datasetfile AS m JOIN datasets_file AS f ON f.id = m.file_id
           GROUP BY m.dataset_id, m.version_added) AS c ON c.dataset_id = d.id AND c.version_added <= v
GROUP BY d.id, v, d.latest_version, d.state, d.created_at
"""
VERSION_COLUMNS = {
    "dataset_id": "d.id",
    "number": "v",
    "vuid": "gen_random_uuid()",
    "state": "CASE WHEN v < d.latest_version OR d.state <> 'open' THEN 'closed' ELSE 'open' END",
    "n_files": "coalesce(sum(c.n), 0)",
    "bytes": "coalesce(sum(c.b), 0)",
    "created_at": "d.created_at + (v - 1) * interval '20 days'",
    "closed_at": "CASE WHEN v < d.latest_version OR d.state <> 'open' THEN d.created_at + v * interval '10 days' END",
}
# First copy at a Tier-1 disk (or tape) endpoint, second anywhere else; one second copy in ten holds 70 %.
FILE_REPLICA_SOURCE = """
FROM datasets_file AS f
JOIN datasets_dataset AS d ON d.id = f.origin_dataset_id
CROSS JOIN LATERAL (VALUES
    (1, (%(tier1_sites)s::bigint[])[1 + mod(d.id * 7, %(n_tier1)s)]),
    (2, (%(all_sites)s::bigint[])[1 + mod(d.id * 7919 + CASE WHEN (%(all_sites)s::bigint[])[1 + mod(d.id * 7919, %(n_all)s)]
                                            = (%(tier1_sites)s::bigint[])[1 + mod(d.id * 7, %(n_tier1)s)]
                                       THEN 1 ELSE 0 END, %(n_all)s)])
) AS r(copy, site_id)
JOIN sites_site AS s ON s.id = r.site_id
WHERE f.id BETWEEN %(first)s AND %(last)s AND (r.copy = 1 OR mod(d.id, 10) <> 0 OR mod(f.id, 10) < 7)
"""
FILE_REPLICA_COLUMNS = {
    "file_id": "f.id",
    "site_id": "r.site_id",
    "pfn": "'srm://' || lower(s.name) || '.example.org/pnfs/atlas/' || d.series || '/' || d.name || '/' || f.lfn",
    "state": "'available'",
    "created_at": "f.created_at + r.copy * interval '1 hour'",
}
DATASET_REPLICA_SQL = """
INSERT INTO datasets_datasetreplica (dataset_id, site_id, files_present, bytes_present, secondary, created_at,
                                     modified_at)
SELECT m.dataset_id, r.site_id, count(*), sum(f.fsize), false, min(r.created_at), max(r.created_at)
FROM datasets_filereplica AS r
JOIN datasets_datasetfile AS m ON m.file_id = r.file_id
JOIN datasets_file AS f ON f.id = r.file_id
GROUP BY m.dataset_id, r.site_id
"""
SITE_REPLICA_TOTALS_SQL = """
INSERT INTO datasets_sitereplicatotals (site_id, files, bytes)
SELECT r.site_id, count(*), sum(f.fsize)
FROM datasets_filereplica AS r JOIN datasets_file AS f ON f.id = r.file_id
GROUP BY r.site_id
"""
CONTAINER_MEMBER_SQL = """
INSERT INTO datasets_containermember (container_id, member_id, added_at)
SELECT c.id, %(reg_first)s + mod(c.id * 7919 + k * 101, %(n_reg)s), c.created_at
FROM datasets_dataset AS c CROSS JOIN generate_series(1, %(members)s) AS k
WHERE c.kind = 'container'
ON CONFLICT DO NOTHING
"""
PILOT_ACTIVITY_SQL = """
UPDATE sites_pilotactivity AS a
SET last_contact_at = %(now)s::timestamptz - mod(a.site_id * 7, 10) * interval '1 minute',
    last_getjob_at = %(now)s::timestamptz - mod(a.site_id * 7, 10) * interval '1 minute',
    last_job_sent_at = %(now)s::timestamptz - mod(a.site_id * 11, 30) * interval '1 minute',
    last_update_at = %(now)s::timestamptz - mod(a.site_id * 3, 5) * interval '1 minute',
    last_node = 'wn0001.' || lower(s.name) || '.example.org',
    getjob_requests = 100000 + a.site_id * 1000, getjob_empty = 1000 + a.site_id * 10,
    jobs_sent = 90000 + a.site_id * 900, update_requests = 500000 + a.site_id * 5000
FROM sites_site AS s
WHERE s.id = a.site_id AND s.status = 'online'
"""

# Dataset names by category, following seed-grid.json's naming convention
# (series.number.physics.stage.format.release) and its browser categories.
PHYSICS = ["singlepart_mu18", "PythiaZmumu", "PythiaWenu", "McAtNloTtbar", "J5_pythia_jetjet", "minbias",
           "AlpgenZee", "singlepart_e50", "PythiaH130zz4l", "SU3_jimmy_susy", "T1_McAtNlo_Jimmy"]  # fmt: skip
STAGE_FORMATS = [("evgen", "EVNT"), ("simul", "HITS"), ("digit", "RDO"), ("recon", "ESD"), ("recon", "AOD"),
                 ("recon", "CBNT"), ("merge", "AOD"), ("recon", "TAG"), ("merge", "HIST")]  # fmt: skip
NAME_TEMPLATES = {
    "T0": "T0.{i:06d}.physics_{stream}.daq.RAW.o{r}",
    "conditions": "cond06.{i:06d}.LAr_calib.cond.POOL.v{r}",
    "csc": "csc11.{i:06d}.{physics}.{stage}.{fmt}.v11004{r:03d}",
    "ctb": "ctb.{i:06d}.combined.recon.ESD.v12000{r}",
    "dc2": "dc2.{i:06d}.{physics}.simul.HITS.v0900{r}",
    "larg": "larg.{i:06d}.calib.daq.RAW.v1",
    "mc": "mc11.{i:06d}.{physics}.{stage}.{fmt}.v11000{r:03d}",
    "other": "misal1_mc12.{i:06d}.{physics}.{stage}.{fmt}.v12000{r}",
    "rome": "rome.{i:06d}.{physics}.recon.AOD.v10{r}",
    "testpanda": "testpanda.{i:06d}.{physics}.{stage}.{fmt}.v1",
    "tile": "tile.{i:06d}.cosmics.daq.RAW.v1",
    "user": "user.{user}.{i:06d}.{physics}.{fmt}.v{r}",
    "validation": "valid1.{i:06d}.{physics}.recon.AOD.v12000{r}",
    "dispatch": "mc11.{i:06d}.{physics}.{stage}.{fmt}.v11000{r:03d}_dis{i:08d}",
    "destination": "mc11.{i:06d}.{physics}.{stage}.{fmt}.v11000{r:03d}_sub{i:08d}",
}
BLOCK_CATEGORIES = ("dispatch", "destination")
STREAMS = ["Muon", "Egamma", "Jet", "MinBias", "Express"]


def user_names():
    """The production accounts, then analysis users with made-up but name-like logins."""
    first = "abcdefghijklmnoprstvwz"
    last = ["smith", "muller", "rossi", "garcia", "novak", "wang", "kim", "dubois", "jansen", "ivanov", "silva",
            "cohen", "tanaka", "berg", "kowalski", "moreau", "fischer", "ricci", "lopez", "olsen", "horvat", "weber",
            "ng", "park"]  # fmt: skip
    analysts = sorted({f"{first[i % len(first)]}{last[(i * 7) % len(last)]}{i // 100 or ''}" for i in range(2000)})
    return PRODUCTION_ACCOUNTS + analysts[: N_USERS - len(PRODUCTION_ACCOUNTS)]


# ----------------------------------------------------------------------------------- steps


def _execute(sql_text, params):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql_text, params)
        return cursor.rowcount


def empty_tables():
    """The bench database is the bench's own (its name says so): start from empty jobs and catalog."""
    from django.db import connection

    tables = [*JOB_TABLES, *CATALOG_TABLES, *pages_fill_flow.FLOW_TABLES]
    quoted = ", ".join(connection.ops.quote_name(table) for table in tables)
    _execute(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE", [])


def load_sites(now):
    """The seed grid (sites.grid), pilots recently in touch with every computing site."""
    from sites.grid import load_grid
    from sites.models import Site

    clouds, n_sites = load_grid()
    _execute(PILOT_ACTIVITY_SQL, {"now": now})
    computing = list(Site.objects.filter(status="online").select_related("cloud").order_by("name"))
    storage = list(Site.objects.order_by("name"))
    print(f"  grid: {clouds} clouds, {n_sites} sites ({len(computing)} computing)")
    return computing, storage


def job_slots(computing_sites):
    """Site slots weighted by size: a Tier-0/1 appears 6 times, a Tier-2 1-4 times; each with its worker nodes."""
    slots = []
    for site in computing_sites:
        spread = zlib.crc32(site.name.encode())
        weight = 6 if site.tier <= 1 else 1 + spread % 4
        slots += [(site.pk, site.name, site.cloud.name, 100 + spread % 400)] * weight
    return slots


def create_users(names):
    """Django users for the submitters (pages and owner links name them); returns their ids in `names` order."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    user_model = get_user_model()
    existing = set(user_model.objects.filter(username__in=names).values_list("username", flat=True))
    unusable = make_password(None)
    user_model.objects.bulk_create(
        [user_model(username=name, password=unusable) for name in names if name not in existing], batch_size=1000
    )
    ids = dict(user_model.objects.filter(username__in=names).values_list("username", "id"))
    return [ids[name] for name in names]


def dataset_specs(n_datasets, n_files, names, user_ids, now):
    """Parallel arrays for DATASET_SOURCE: regular datasets first (the 10,000-file one leads), then dispatch
    blocks, destination blocks and containers, so each group gets a contiguous id range."""
    from datasets.naming import is_valid_name, parse
    from sites.grid import SEED_FILE

    seed = json.loads(SEED_FILE.read_text())
    counts = {entry["name"]: entry["count"] for entry in seed["dataset_categories"]}
    scale = n_datasets / sum(counts.values())
    per_category = {name: max(1, round(count * scale)) for name, count in counts.items()}
    per_category["mc"] += n_datasets - sum(per_category.values())  # rounding goes to the biggest sample
    order = ["mc"] + [name for name in per_category if name not in ("mc", *BLOCK_CATEGORIES)] + list(BLOCK_CATEGORIES)
    sizes = dataset_sizes(n_datasets, n_files)
    if max(sizes) >= 1_000_000:
        raise ValueError("a dataset would exceed 999,999 files (6-digit file numbers)")
    analysts = names[len(PRODUCTION_ACCOUNTS) :]
    analyst_ids = user_ids[len(PRODUCTION_ACCOUNTS) :]
    rows, index = [], 0
    for category in order:
        for _ in range(per_category[category]):
            rows.append(_dataset_row(category, index, sizes[index], analysts, analyst_ids, n_datasets))
            index += 1
    for k in range(CONTAINERS):
        name = f"mc11.{900000 + k:06d}.{PHYSICS[k % len(PHYSICS)]}.merge.AOD.c{k % 10}"
        rows.append({"name": name, "kind": "container", "state": "closed" if k % 3 else "open", "owner": None,
                     "version": 0, "size": 0, "age_days": 30.0 * (k % 12), "category": "mc"})  # fmt: skip
    arrays = {key: [] for key in ("names", "kinds", "states", "owners", "versions", "sizes", "ages", "series",
                                  "numbers", "physics", "stages", "formats", "releases", "categories")}  # fmt: skip
    for row in rows:
        parsed = parse(row["name"])
        if not is_valid_name(row["name"]) or parsed.category != row["category"]:
            raise ValueError(f"bench dataset name {row['name']!r} parses as {parsed.category}, not {row['category']}")
        for key, value in (("names", row["name"]), ("kinds", row["kind"]), ("states", row["state"]),
                           ("owners", row["owner"]), ("versions", row["version"]), ("sizes", row["size"]),
                           ("ages", row["age_days"]), ("series", parsed.series), ("numbers", parsed.number),
                           ("physics", parsed.physics), ("stages", parsed.stage), ("formats", parsed.format),
                           ("releases", parsed.release), ("categories", parsed.category)):  # fmt: skip
            arrays[key].append(value)
    arrays["now"] = now
    return arrays, per_category


def dataset_sizes(n_datasets, n_files):
    """bench/catalog.py's sizes (one dataset of 10,000 files, the others 1x-3x the mean), except that its rounding
    remainder, which it gives to the last dataset (~25,000 files at full scale), is spread over all of them."""
    sizes = catalog.dataset_sizes(n_datasets, n_files)
    typical = sorted(sizes[1:])[(n_datasets - 1) // 2]
    excess = max(0, sizes[-1] - typical)
    sizes[-1] -= excess
    for k in range(excess):
        sizes[1 + k % (n_datasets - 1)] += 1
    return sizes


def _dataset_row(category, i, size, analysts, analyst_ids, n_datasets):
    stage, fmt = STAGE_FORMATS[(i // 7) % len(STAGE_FORMATS)]
    user = i % len(analysts)
    name = NAME_TEMPLATES[category].format(
        i=i, r=i % 7, physics=PHYSICS[i % len(PHYSICS)], stage=stage, fmt=fmt, stream=STREAMS[i % len(STREAMS)],
        user=analysts[user],
    )  # fmt: skip
    if category == "dispatch":
        kind, state = "datablock", "frozen"
    elif category == "destination":
        kind, state = "dataset", "closed"
    else:
        kind, state = "dataset", ("closed", "closed", "closed", "frozen", "open")[i % 5]
    version = 2 if state != "open" and kind == "dataset" and i % 7 == 0 else 1
    age_days = 400.0 * (n_datasets - i) / n_datasets  # newest last
    return {"name": name, "kind": kind, "state": state, "owner": analyst_ids[user] if category == "user" else None,
            "version": version, "size": size, "age_days": age_days, "category": category}  # fmt: skip


def fill_catalog(n_datasets, n_files, names, user_ids, storage_sites, now):
    """Datasets, files, memberships, versions, containers, file and dataset replicas; returns the id ranges."""
    from datasets.models import Dataset, DatasetVersion, File, FileReplica

    started = time.perf_counter()
    arrays, per_category = dataset_specs(n_datasets, n_files, names, user_ids, now)
    sql_text, defaults = _insert_sql(Dataset, DATASET_COLUMNS, "", DATASET_SOURCE)
    _execute(sql_text, {**arrays, **defaults})
    ranges = dataset_ranges()
    print(f"  {Dataset.objects.count():,} datasets ({len(per_category)} categories) "
          f"({time.perf_counter() - started:.1f} s)")  # fmt: skip
    sql_text, defaults = _insert_sql(File, FILE_COLUMNS, "", FILE_SOURCE)
    last_id = ranges["containers"][0] - 1
    for first in range(1, last_id + 1, 5000):
        _execute(sql_text, {**defaults, "first": first, "last": min(first + 4999, last_id)})
    print(f"  {File.objects.count():,} files ({time.perf_counter() - started:.1f} s)")
    _execute(MEMBERSHIP_SQL, [])
    _execute(DATASET_TOTALS_SQL, [])
    sql_text, defaults = _insert_sql(DatasetVersion, VERSION_COLUMNS, "", VERSION_SOURCE)
    _execute(sql_text, defaults)
    _execute(CONTAINER_MEMBER_SQL, {**_range_params(ranges), "members": CONTAINER_MEMBERS})
    print(f"  memberships, versions, containers ({time.perf_counter() - started:.1f} s)")
    tier1 = [site.pk for site in storage_sites if site.tier <= 1 or site.name.endswith(("DISK", "TAPE"))]
    everywhere = [site.pk for site in storage_sites]
    sql_text, defaults = _insert_sql(FileReplica, FILE_REPLICA_COLUMNS, "", FILE_REPLICA_SOURCE)
    site_params = {"tier1_sites": tier1, "n_tier1": len(tier1), "all_sites": everywhere, "n_all": len(everywhere)}
    top = File.objects.order_by("-id").values_list("id", flat=True).first() or 0
    for first in range(1, top + 1, 250_000):
        _execute(sql_text, {**defaults, **site_params, "first": first, "last": first + 249_999})
    _execute(DATASET_REPLICA_SQL, [])
    _execute(SITE_REPLICA_TOTALS_SQL, [])
    print(f"  {FileReplica.objects.count():,} file replicas and their dataset replicas "
          f"({time.perf_counter() - started:.1f} s)")  # fmt: skip
    return ranges


def dataset_ranges():
    """First id and count of the regular datasets, the dispatch blocks, the destination blocks and the containers."""
    from django.db.models import Count, Max, Min, Q

    from datasets.models import Dataset

    groups = {
        "regular": ~Q(category__in=BLOCK_CATEGORIES) & ~Q(kind="container"),
        "dispatch": Q(category="dispatch"),
        "destination": Q(category="destination"),
        "containers": Q(kind="container"),
    }
    ranges = {}
    for key, condition in groups.items():
        found = Dataset.objects.filter(condition).aggregate(first=Min("id"), last=Max("id"), n=Count("id"))
        if not found["n"] or found["last"] - found["first"] + 1 != found["n"]:
            raise RuntimeError(f"bench datasets of group {key} do not have contiguous ids: {found}")
        ranges[key] = (found["first"], found["n"])
    return ranges


def _range_params(ranges):
    return {
        "reg_first": ranges["regular"][0], "n_reg": ranges["regular"][1],
        "dis_first": ranges["dispatch"][0], "n_dis": ranges["dispatch"][1],
        "sub_first": ranges["destination"][0], "n_sub": ranges["destination"][1],
    }  # fmt: skip


def job_params(args, slots, names, user_ids, now):
    n_recent = min(args.jobs, args.recent_days * args.recent_per_day)
    n_old = args.jobs - n_recent
    return {
        "now": now,
        "days": args.days,
        "recent_days": args.recent_days,
        "n_old": n_old,
        "old_step": (args.days - args.recent_days) * 86400 / max(1, n_old),
        "recent_step": args.recent_days * 86400 / max(1, n_recent),
        "task_base": TASK_BASE,
        "task_span": TASK_SPAN,
        "tasks_per_span": TASKS_PER_SPAN,
        "jobset_base": pages_fill_flow.JOBSET_BASE,
        "jobsets_per_task": pages_fill_flow.JOBSETS_PER_TASK,
        "n_prod": len(PRODUCTION_ACCOUNTS),
        "n_users": len(names),
        "user_names": names,
        "user_ids": user_ids,
        "n_slots": len(slots),
        "slot_ids": [slot[0] for slot in slots],
        "slot_names": [slot[1] for slot in slots],
        "slot_clouds": [slot[2] for slot in slots],
        "slot_wns": [slot[3] for slot in slots],
    }


def fill_jobs(args, params):
    from jobs.models import Job

    started = time.perf_counter()
    sql_text, defaults = _insert_sql(Job, JOB_COLUMNS, JOB_SOURCE, "FROM stamped")
    for first in range(1, args.jobs + 1, JOB_CHUNK):
        chunk = {"first": first, "last": min(first + JOB_CHUNK - 1, args.jobs)}
        _execute(sql_text, {**params, **defaults, **chunk})
        print(f"  jobs {chunk['first']:,}..{chunk['last']:,} ({time.perf_counter() - started:.1f} s)")
    _sync_identity(Job, "pandaid")


def fill_job_details(since, ranges):
    """State history and files of the jobs created since `since`; returns the first PandaID covered."""
    from jobs.models import Job, JobFile, JobStatusLog

    started = time.perf_counter()
    first_id = Job.objects.filter(creation_time__gte=since).order_by("pandaid").values_list("pandaid", flat=True)
    first_id = first_id.first()
    last_id = Job.objects.order_by("-pandaid").values_list("pandaid", flat=True).first()
    if first_id is None:
        return None
    log_sql, log_defaults = _insert_sql(JobStatusLog, STATUS_LOG_COLUMNS, "", STATUS_LOG_SOURCE)
    file_sql, file_defaults = _insert_sql(JobFile, JOB_FILE_COLUMNS, "", JOB_FILE_SOURCE)
    for first in range(first_id, last_id + 1, JOB_CHUNK):
        chunk = {"first": first, "last": min(first + JOB_CHUNK - 1, last_id)}
        _execute(log_sql, {**log_defaults, **chunk})
        _execute(file_sql, {**file_defaults, **_range_params(ranges), **chunk})
        print(f"  history and files of jobs {chunk['first']:,}..{chunk['last']:,} "
              f"({time.perf_counter() - started:.1f} s)")  # fmt: skip
    _sync_identity(JobStatusLog, "id")
    _sync_identity(JobFile, "id")
    return first_id


def vacuum_analyze():
    """Autovacuum may be off (it is on the bench machine): fresh statistics and visibility maps for every plan."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in VACUUM_TABLES:
            cursor.execute(f"VACUUM (ANALYZE) {connection.ops.quote_name(table)}")


def fill(args):
    """The whole bench data set; returns {step: seconds}."""
    now = datetime.now(UTC)
    steps = {}

    def step(name, function, *step_args):
        started = time.perf_counter()
        print(f"{name} ...")
        result = function(*step_args)
        steps[name] = time.perf_counter() - started
        return result

    # The generated INSERT ... SELECTs have huge expression trees and plan costs far above
    # jit_optimize_above_cost: LLVM then spends minutes (uninterruptibly) optimizing them.
    _execute("SET jit = off", [])
    step("empty tables", empty_tables)
    computing, storage = step("grid", load_sites, now)
    names = user_names()
    user_ids = step("users", create_users, names)
    ranges = step("catalog", fill_catalog, args.datasets, args.files, names, user_ids, storage, now)
    params = job_params(args, job_slots(computing), names, user_ids, now)
    step("jobs", fill_jobs, args, params)
    step("job history and files", fill_job_details, now - timedelta(days=args.detail_days), ranges)
    flow_ranges = _range_params(ranges)
    step("tasks", pages_fill_flow.fill_tasks, now, flow_ranges, PRODUCTION_ACCOUNTS, JOB_CHUNK)
    step("subscriptions and transfers", pages_fill_flow.fill_transfers, now, flow_ranges,
         [site.pk for site in computing], names[len(PRODUCTION_ACCOUNTS) :])  # fmt: skip
    step("operations history", pages_fill_flow.fill_history, now)
    step("vacuum analyze", vacuum_analyze)
    _execute("RESET jit", [])
    return steps


def shift_times(delta):
    """Move every job time forward by `delta` (so reused data is as fresh as just filled); one UPDATE per table."""
    from django.db import connection
    from django.db.models import F

    from jobs.models import Job, JobStatusLog
    from sites.models import PilotActivity

    job_times = ["creation_time", "modification_time", "state_change_time", "start_time", "end_time"]
    contact_times = ["last_contact_at", "last_getjob_at", "last_job_sent_at", "last_update_at"]
    Job.objects.update(**{name: F(name) + delta for name in job_times})
    JobStatusLog.objects.update(changed_at=F("changed_at") + delta)
    PilotActivity.objects.exclude(last_contact_at=None).update(**{name: F(name) + delta for name in contact_times})
    # The updates left a dead copy of every row and put the new ones wherever there was room, which
    # scatters the time windows over the table (pages then read several times more blocks). CLUSTER
    # on the primary key rewrites the tables compact and in the fill's order (PandaIDs grow with time);
    # VACUUM then rebuilds the visibility map, without which no index-only scan is used.
    with connection.cursor() as cursor:
        for model in (Job, JobStatusLog, PilotActivity):
            table = model._meta.db_table
            constraints = connection.introspection.get_constraints(cursor, table)
            primary = next(name for name, about in constraints.items() if about["primary_key"])
            quoted_table, quoted_index = connection.ops.quote_name(table), connection.ops.quote_name(primary)
            cursor.execute(f"CLUSTER {quoted_table} USING {quoted_index}")
            cursor.execute(f"VACUUM (ANALYZE) {quoted_table}")
    pages_fill_flow.shift_flow_times(delta)

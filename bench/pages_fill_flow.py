"""Data for bench/pages.py's task and data-flow pages, on top of bench/pages_fill.py's jobs and catalog.

Set-wise SQL like the rest of the fill (INSERT ... SELECT, values always bound parameters), consistent with
the jobs, their files and the catalog:

- tasks: one Task per task id of the jobs (~2,000 of ~500 jobs; counters and `jobs_by_state` rolled up from
  its jobs, its datasets those of the jobs' files), TaskInput (~2,000,000 pieces: each job's 1-3 inputs as
  event ranges of the input dataset's files, held by the job or its retry), JobSet (8 per task, the jobs'
  jobset ids), TaskStatusLog, and 30 tasks without jobs (defined, broken, aborted).
- ~23,000 subscriptions: the second copy of every regular dataset (done; active, stuck or suspended where
  incomplete), dispatch blocks to the sites of the last `TRANSFER_DAYS` days' tasks, destination blocks to
  their cloud's Tier-1 (archival), a week of production placements (the 10,000-file dataset too) and users'
  container subscriptions; the file and dataset replicas the new ones copied.
- ~520,000 transfer requests (the files of the subscriptions of the last `TRANSFER_DAYS` days or still live:
  done where the site holds the file, else queued, submitted or failed with errors), their hourly channel
  stats, ReplicaCallbacks, StorageSpace reports, and the operations history the home and site pages plot
  (alarms' job, channel, queue and storage snapshots over PANDA_HISTORY_DAYS) computed from jobs and transfers.
"""

import time
from datetime import timedelta

from bench.fill import _insert_sql, _sync_identity

TRANSFER_DAYS = 21
JOBSET_BASE = 1_000_000
JOBSETS_PER_TASK = 8
EXTRA_TASKS = 30
FLOW_TABLES = [
    "tasks_taskstatuslog", "tasks_jobset", "tasks_taskinput", "tasks_task", "datasets_replicacallback",
    "datasets_transferchannelstat", "datasets_transferrequest", "datasets_subscription", "alarms_jobcountsnapshot",
    "alarms_transferchannelsnapshot", "alarms_transferqueuesnapshot", "alarms_storagesnapshot", "sites_storagespace",
]  # fmt: skip
FINAL = "('finished', 'failed', 'cancelled', 'closed')"
QUEUED = "('pending', 'defined', 'assigned', 'waiting', 'activated', 'throttled')"

# ----------------------------------------------------------------------------------- tasks

TASK_HEAD = f"""
WITH per_state AS (
    SELECT task_id, status, count(*) AS n, min(creation_time) AS created, max(modification_time) AS modified,
           min(prod_source_label) AS label, min(prod_user_name) AS uname, min(owner_id) AS owner_id,
           min(processing_type) AS ptype, min(transformation) AS trf, min(sw_release) AS rel,
           max(min_ram_count) AS ram, max(max_walltime) AS walltime, max(assigned_priority) AS prio
    FROM jobs_job WHERE task_id IS NOT NULL GROUP BY task_id, status
), t AS (
    SELECT task_id, jsonb_object_agg(status, n) AS by_state,
           coalesce(sum(n) FILTER (WHERE status NOT IN {FINAL}), 0) AS live,
           coalesce(sum(n) FILTER (WHERE status NOT IN {QUEUED}), 0) AS started,
           min(created) AS created, max(modified) AS modified, min(label) AS label, min(uname) AS uname,
           min(owner_id) AS owner_id, min(ptype) AS ptype, min(trf) AS trf, min(rel) AS rel, max(ram) AS ram,
           max(walltime) AS walltime, max(prio) AS prio
    FROM per_state GROUP BY task_id
)
"""
TASK_SOURCE = """
FROM t
JOIN datasets_dataset AS din ON din.id = %(reg_first)s + mod(t.task_id * 7919, %(n_reg)s)
JOIN datasets_dataset AS dout ON dout.id = %(reg_first)s + mod(t.task_id * 104729 + 1, %(n_reg)s)
"""
TASK_COLUMNS = {
    "task_id": "t.task_id",
    "name": "CASE t.label WHEN 'user' THEN 'user.' || t.uname || '.' || t.task_id || '.MyAnalysis'"
    " WHEN 'ptest' THEN 'ptest.' || t.task_id || '.gangarobot'"
    " ELSE 'mc11.' || lpad(mod(t.task_id, 999999)::text, 6, '0') || '.' || din.physics || '.' || t.ptype"
    " || '.task' || t.task_id END",
    "type": "CASE t.label WHEN 'user' THEN 'analysis' ELSE 'production' END",
    "owner_id": "t.owner_id",
    "owner_name": "t.uname",
    "working_group": "CASE t.label WHEN 'managed' THEN (ARRAY['AP_Higgs', 'AP_Top', 'AP_SUSY', 'AP_Exotics',"
    " 'AP_SM', 'AP_Btag'])[1 + mod(t.task_id, 6)] WHEN 'ptest' THEN 'AP_Validation' ELSE '' END",
    "project": "CASE t.label WHEN 'managed' THEN 'mc11' ELSE t.label END",
    "prod_source_label": "t.label",
    "transformation": "t.trf",
    "trf_version": "'11.0.' || mod(t.task_id, 5)",
    "sw_release": "t.rel",
    "job_parameters": "CASE t.label WHEN 'user' THEN '-c \"${IN}\" -o ${OUT}' ELSE '--inputFile=${IN} --outputFile=${OUT}"
    " --skipEvents=${SKIPEVENTS} --maxEvents=${MAXEVENTS} --randomSeed=${SN}' END",
    "input_dataset": "din.name",
    "output_dataset": "dout.name",
    "output_formats": "CASE t.label WHEN 'user' THEN 'root' ELSE 'HITS' END",
    "n_events_per_job": "CASE t.label WHEN 'managed' THEN 1000 ELSE 250 END",
    "cpu_per_event": "CASE t.label WHEN 'managed' THEN 300 ELSE 10 END",
    "ram_mb": "t.ram",
    "walltime_s": "t.walltime",
    "priority": "t.prio",
    "status": "CASE WHEN t.live > 0 AND t.started = 0 THEN 'ready' WHEN t.live > 0 AND mod(t.task_id, 61) = 0"
    " THEN 'paused' WHEN t.live > 0 THEN 'running' ELSE 'done' END",
    "status_reason": "CASE WHEN t.live > 0 AND t.started > 0 AND mod(t.task_id, 61) = 0 THEN 'paused by ' || t.uname"
    " ELSE '' END",
    "jobs_by_state": "t.by_state",
    "created_at": "t.created - interval '10 minutes'",
    "modified_at": "t.modified",
    "status_changed_at": "CASE WHEN t.live = 0 THEN t.modified WHEN t.started = 0 THEN t.created"
    " WHEN mod(t.task_id, 61) = 0 THEN GREATEST(t.created + interval '30 minutes', t.modified - interval '1 hour')"
    " ELSE t.created + interval '20 minutes' END",
    "ended_at": "CASE WHEN t.live = 0 THEN t.modified END",
}
# Tasks without jobs: just defined, broken (cannot run as defined) or aborted before they ran.
EXTRA_TASK_SOURCE = """
FROM generate_series(1, %(extra)s) AS g
JOIN auth_user AS u ON u.username = (%(owners)s::text[])[1 + mod(g * 7, cardinality(%(owners)s::text[]))]
JOIN datasets_dataset AS din ON din.id = %(reg_first)s + mod(g * 7919, %(n_reg)s)
CROSS JOIN LATERAL (SELECT CASE WHEN g <= %(extra)s / 2 THEN 'defined' WHEN mod(g, 2) = 0 THEN 'broken'
                           ELSE 'aborted' END AS state,
                           %(now)s::timestamptz - g * interval '3 hours' AS at) AS s
"""
EXTRA_TASK_COLUMNS = {
    "task_id": "%(first_id)s + g",
    "name": "'mc11.' || lpad(mod(%(first_id)s + g, 999999)::text, 6, '0') || '.' || din.physics || '.simul.task'"
    " || (%(first_id)s + g)",
    "type": "'production'",
    "owner_id": "u.id",
    "owner_name": "u.username",
    "working_group": "'AP_SM'",
    "project": "'mc11'",
    "prod_source_label": "'managed'",
    "transformation": "'csc.simul.trf'",
    "sw_release": "'Atlas-11.0.' || mod(g, 5)",
    "input_dataset": "din.name",
    "output_dataset": "din.name || '.task' || (%(first_id)s + g)",
    "n_events_per_job": "1000",
    "status": "s.state",
    "status_reason": "CASE s.state WHEN 'broken' THEN (ARRAY['input dataset ' || din.name || ' has no replica at"
    " an online site', 'release Atlas-11.0.' || mod(g, 5) || ' is not installed at any site of the cloud',"
    " 'transformation csc.simul.trf rejected the parameters: unknown option --geometryVersion'])[1 + mod(g, 3)]"
    " WHEN 'aborted' THEN 'aborted by ' || u.username || ': wrong release' ELSE '' END",
    "created_at": "s.at",
    "modified_at": "s.at + interval '5 minutes'",
    "status_changed_at": "s.at + interval '5 minutes'",
    "ended_at": "CASE WHEN s.state <> 'defined' THEN s.at + interval '5 minutes' END",
}
# Each job's 1-3 inputs are ranges of events of its task's input files (the same LFNs as its JobFiles);
# a failed job's pieces are held by its retry if it has one, else wait (live task) or failed / were done.
TASK_INPUT_SOURCE = f"""
FROM jobs_job AS j
JOIN tasks_task AS t ON t.task_id = j.task_id
JOIN datasets_dataset AS din ON din.id = %(reg_first)s + mod(j.task_id * 7919, %(n_reg)s)
CROSS JOIN generate_series(1, j.n_input_files) AS k
CROSS JOIN LATERAL (SELECT 1 + mod(j.pandaid * 3 + k, din.n_files) AS n) AS f
LEFT JOIN jobs_job AS r ON r.parent_id = j.pandaid AND r.task_id = j.task_id
    AND r.pandaid BETWEEN %(first)s AND %(last)s + 1000
CROSS JOIN LATERAL (SELECT coalesce(r.pandaid, j.pandaid) AS pandaid, coalesce(r.status, j.status) AS status,
                           coalesce(r.attempt_nr, j.attempt_nr) AS attempt_nr) AS h
CROSS JOIN LATERAL (SELECT CASE WHEN h.status = 'finished' THEN 'done' WHEN h.status NOT IN {FINAL} THEN 'assigned'
                                WHEN t.status IN ('ready', 'running', 'paused') THEN 'pending'
                                WHEN mod(j.task_id * 7, 10) < 4 THEN 'failed' ELSE 'done' END AS state,
                           CASE j.prod_source_label WHEN 'managed' THEN 1000 ELSE 250 END AS events) AS p
WHERE j.pandaid BETWEEN %(first)s AND %(last)s
"""
TASK_INPUT_COLUMNS = {
    "task_id": "j.task_id",
    "lfn": "din.name || '._' || lpad(f.n::text, 6, '0') || '.pool.root.1'",
    "fsize": "50000000 + mod(din.id * 7919 + f.n * 104729, 3950000000)::bigint",
    "first_event": "p.events * (row_number() OVER (PARTITION BY j.task_id, f.n ORDER BY j.pandaid, k) - 1)",
    "n_events": "p.events",
    "status": "p.state",
    "job_id": "CASE WHEN p.state IN ('assigned', 'failed') OR h.status = 'finished' THEN h.pandaid END",
    "attempts": "CASE p.state WHEN 'assigned' THEN h.attempt_nr - 1 ELSE h.attempt_nr END",
    "created_at": "t.created_at",
}
TASK_COUNTERS_SQL = """
UPDATE tasks_task AS t
SET files_total = c.n, files_done = c.done, files_failed = c.failed, events_total = c.events,
    events_done = c.events_done,
    status = CASE WHEN t.status <> 'done' THEN t.status WHEN c.done = 0 THEN 'failed'
                  WHEN c.failed > 0 THEN 'finished' ELSE 'done' END,
    status_reason = CASE WHEN t.status <> 'done' THEN t.status_reason WHEN c.done = 0 THEN 'no input file could be processed'
                         WHEN c.failed > 0 THEN c.failed || ' input piece(s) failed for good' ELSE '' END
FROM (SELECT task_id, count(*) AS n, count(*) FILTER (WHERE status = 'done') AS done,
             count(*) FILTER (WHERE status = 'failed') AS failed, sum(n_events) AS events,
             coalesce(sum(n_events) FILTER (WHERE status = 'done'), 0) AS events_done
      FROM tasks_taskinput GROUP BY task_id) AS c
WHERE c.task_id = t.task_id
"""
JOBSET_SQL = """
INSERT INTO tasks_jobset (jobset_id, task_id, n_jobs, created_at)
SELECT jobset_id, task_id, count(*), min(creation_time) FROM jobs_job
WHERE jobset_id IS NOT NULL AND task_id IS NOT NULL GROUP BY jobset_id, task_id
"""
TASK_LOG_SOURCE = """
FROM tasks_task AS t CROSS JOIN LATERAL (VALUES
    ('', 'defined', t.created_at, t.owner_name, '', true),
    ('defined', 'ready', t.created_at + interval '5 minutes', 'jedi', 'split into jobs', t.files_total > 0),
    ('ready', 'running', t.created_at + interval '20 minutes', 'jedi', 'first job started',
     t.files_total > 0 AND t.status <> 'ready'),
    ('running', 'paused', t.status_changed_at, t.owner_name, t.status_reason, t.status = 'paused'),
    ('running', t.status, t.ended_at, 'jedi', t.status_reason,
     t.files_total > 0 AND t.status IN ('done', 'finished', 'failed')),
    ('defined', t.status, t.ended_at, CASE t.status WHEN 'broken' THEN 'jedi' ELSE t.owner_name END, t.status_reason,
     t.files_total = 0 AND t.status IN ('broken', 'aborted'))
) AS s(old, new, at, actor, reason, keep)
WHERE s.keep
"""
TASK_LOG_COLUMNS = {"task_id": "t.task_id", "old_status": "s.old", "new_status": "s.new", "changed_at": "s.at",
                    "actor": "s.actor", "reason": "s.reason"}  # fmt: skip

# ----------------------------------------------------------------------------------- subscriptions

# The five kinds, one row each: (dataset, site, owner, activity, priority, state, times). Inserted in
# creation order, so that ids grow with time as in production.
SUBSCRIPTION_HEAD = """
WITH tier1 AS (
    SELECT DISTINCT ON (cloud_id) cloud_id, id FROM sites_site ORDER BY cloud_id, tier, name NOT LIKE '%%DISK', name
), second_copy AS (
    SELECT r.dataset_id, r.site_id, r.files_present, r.modified_at, d.n_files, d.category, d.owner_id, d.created_at,
           mod(d.id * 7919, 100) AS h
    FROM (SELECT dataset_id, site_id, files_present, modified_at,
                 row_number() OVER (PARTITION BY dataset_id ORDER BY created_at, site_id) AS copy
          FROM datasets_datasetreplica) AS r
    JOIN datasets_dataset AS d ON d.id = r.dataset_id
    WHERE r.copy = 2 AND d.id < %(reg_first)s + %(n_reg)s
), task_site AS (
    SELECT task_id, computing_site_id AS site_id, min(creation_time) AS c0,
           count(*) FILTER (WHERE status IN ('assigned', 'waiting')) AS waiting
    FROM jobs_job WHERE computing_site_id IS NOT NULL AND task_id IS NOT NULL
    GROUP BY 1, 2 HAVING max(creation_time) >= %(horizon)s
), task_t1 AS (
    SELECT t.task_id, t.created_at, t.ended_at, t.status, tier1.id AS site_id
    FROM tasks_task AS t
    CROSS JOIN LATERAL (SELECT computing_site_id FROM jobs_job WHERE task_id = t.task_id
                        AND computing_site_id IS NOT NULL LIMIT 1) AS j
    JOIN sites_site AS s ON s.id = j.computing_site_id JOIN tier1 ON tier1.cloud_id = s.cloud_id
), placed AS (
    SELECT d.id AS dataset_id, (%(computing)s::bigint[])[1 + mod(d.id * 13, cardinality(%(computing)s::bigint[]))]
           AS site_id, CASE WHEN d.id = %(reg_first)s THEN %(now)s::timestamptz - interval '20 hours'
           ELSE %(now)s::timestamptz - mod(d.id * 7919, 604800) * interval '1 second' END AS created,
           mod(d.id * 31, 100) AS h
    FROM datasets_dataset AS d
    WHERE d.id < %(reg_first)s + %(n_reg)s AND (mod(d.id, 11) = 0 OR d.id = %(reg_first)s)
      AND d.category NOT IN ('user', 'T0')
), subs AS (
    SELECT dataset_id, site_id, CASE category WHEN 'T0' THEN 'atlas-t0' WHEN 'user' THEN '' ELSE 'atlas-mc-prod' END
           AS owner_name, CASE category WHEN 'user' THEN owner_id END AS user_id,
           CASE category WHEN 'T0' THEN 'data_taking' WHEN 'user' THEN 'user' ELSE 'production' END AS activity,
           CASE category WHEN 'T0' THEN 5 WHEN 'user' THEN 2 ELSE 3 END AS priority,
           CASE WHEN files_present >= n_files THEN 'done' WHEN created_at > %(now)s::timestamptz - interval '10 days'
                THEN 'active' WHEN h < 55 THEN 'stuck' WHEN h < 70 THEN 'suspended' ELSE 'active' END AS state,
           created_at + interval '30 minutes' AS created, modified_at AS finished, h
    FROM second_copy
    UNION ALL
    SELECT %(dis_first)s + mod(task_id, %(n_dis)s), site_id, 'panda', NULL, 'dispatch', 4,
           CASE WHEN waiting > 0 AND mod(task_id, 5) = 0 THEN 'stuck'
                WHEN waiting > 0 OR c0 > %(now)s::timestamptz - interval '45 minutes' THEN 'active' ELSE 'done' END,
           c0 - interval '20 minutes', c0, mod(task_id * 7 + site_id, 100)
    FROM task_site
    UNION ALL
    SELECT %(sub_first)s + mod(task_id * 31, %(n_sub)s), site_id, 'panda', NULL, 'archival', 3,
           CASE WHEN status IN ('ready', 'running', 'paused') OR ended_at > %(now)s::timestamptz - interval '2 hours'
                THEN 'active' WHEN mod(task_id, 37) = 0 THEN 'stuck' ELSE 'done' END,
           created_at + interval '15 minutes', LEAST(ended_at + interval '1 hour', %(now)s), mod(task_id, 100)
    FROM task_t1
    UNION ALL
    SELECT dataset_id, site_id, 'atlas-dpd', NULL, 'production', 3,
           CASE WHEN created > %(now)s::timestamptz - interval '1 day' THEN 'active' WHEN h < 4 THEN 'stuck'
                WHEN h < 6 THEN 'suspended' WHEN created > %(now)s::timestamptz - interval '2 days' AND h < 40
                THEN 'active' ELSE 'done' END,
           created, LEAST(created + (2 + mod(dataset_id, 20)) * interval '1 hour', %(now)s), h
    FROM placed
    WHERE NOT EXISTS (SELECT 1 FROM datasets_datasetreplica AS x WHERE x.dataset_id = placed.dataset_id
                      AND x.site_id = placed.site_id)
    UNION ALL
    SELECT c.id, (%(computing)s::bigint[])[1 + mod(c.id * 31, cardinality(%(computing)s::bigint[]))],
           (%(analysts)s::text[])[1 + mod(c.id * 7, cardinality(%(analysts)s::text[]))], NULL, 'user', 2,
           CASE WHEN mod(c.id * 7, 100) < 8 THEN 'stuck' WHEN mod(c.id * 7, 100) < 10 THEN 'suspended'
                WHEN mod(c.id * 7, 100) < 40 THEN 'active' ELSE 'done' END,
           %(now)s::timestamptz - mod(c.id * 104729, 1209600) * interval '1 second',
           LEAST(%(now)s::timestamptz - mod(c.id * 104729, 1209600) * interval '1 second'
                 + (3 + mod(c.id, 30)) * interval '1 hour', %(now)s), mod(c.id * 7, 100)
    FROM datasets_dataset AS c WHERE c.kind = 'container'
), owned AS (
    SELECT subs.*, coalesce(u.id, subs.user_id) AS owner_id, coalesce(u.username, o.username, subs.owner_name) AS owner
    FROM subs
    LEFT JOIN auth_user AS u ON u.username = subs.owner_name
    LEFT JOIN auth_user AS o ON o.id = subs.user_id
)
"""
SUBSCRIPTION_COLUMNS = {
    "dataset_id": "dataset_id",
    "site_id": "site_id",
    "owner_id": "owner_id",
    "owner_name": "owner",
    "activity": "activity",
    "priority": "priority",
    "state": "state",
    "reason": "CASE state WHEN 'suspended' THEN 'suspended by ' || (ARRAY['jdoe', 'mbranco', 'rgardner'])[1 + mod(h, 3)]"
    " || ': ' || (ARRAY['site in scheduled downtime', 'destination space token full', 'dataset to be deleted',"
    " 'waiting for the cloud squad'])[1 + mod(h, 4)] WHEN 'stuck' THEN 'a file failed every transfer attempt'"
    " ELSE '' END",
    "needs_evaluation": "state = 'active' AND mod(h, 10) = 0",
    "evaluated_at": "CASE WHEN state = 'done' THEN finished WHEN state = 'suspended' THEN NULL"
    " ELSE %(now)s::timestamptz - mod(dataset_id * 13, 3600) * interval '1 second' END",
    "stuck_at": "CASE WHEN state = 'stuck' THEN GREATEST(created + interval '1 hour',"
    " %(now)s::timestamptz - (1 + mod(h, 20)) * interval '1 day') END",
    "stuck_count": "CASE WHEN state = 'stuck' THEN 1 + mod(h, 4) ELSE 0 END",
    "repaired_at": "CASE WHEN state = 'stuck' AND mod(h, 4) > 0 THEN %(now)s::timestamptz - mod(h, 12) * interval"
    " '1 hour' END",
    "done_at": "CASE WHEN state = 'done' THEN finished END",
    "created_at": "created",
    "modified_at": "CASE WHEN state = 'done' THEN finished WHEN state = 'suspended' THEN"
    " GREATEST(created, %(now)s::timestamptz - mod(h, 9) * interval '1 day')"
    " ELSE %(now)s::timestamptz - mod(dataset_id * 13, 3600) * interval '1 second' END",
}
SUBSCRIPTION_TAIL = "FROM owned ORDER BY created, dataset_id ON CONFLICT DO NOTHING"

# Every file a subscription wants with what becomes of it: present at the site (a replica there, or copied
# by one of the new subscriptions) and the transfer request's state and times.
WANTED_SQL = """
CREATE TEMP TABLE bench_wanted AS
WITH wanted AS (
    SELECT s.id AS sub_id, s.site_id, s.state AS sub_state, s.activity, s.priority, s.created_at AS sub_created,
           s.stuck_at, coalesce(s.done_at, %(now)s::timestamptz) AS sub_end, m.dataset_id, m.file_id,
           EXISTS (SELECT 1 FROM datasets_datasetreplica AS x WHERE x.dataset_id = m.dataset_id
                   AND x.site_id = s.site_id) AS had_replica
    FROM datasets_subscription AS s
    JOIN datasets_dataset AS d ON d.id = s.dataset_id
    CROSS JOIN LATERAL (
        SELECT df.dataset_id, df.file_id FROM datasets_datasetfile AS df
        WHERE df.dataset_id = s.dataset_id AND d.kind <> 'container'
        UNION ALL
        SELECT df.dataset_id, df.file_id FROM datasets_containermember AS cm
        JOIN datasets_datasetfile AS df ON df.dataset_id = cm.member_id
        WHERE cm.container_id = s.dataset_id AND d.kind = 'container') AS m
    WHERE NOT (s.state = 'done' AND s.created_at < %(horizon)s AND s.activity NOT IN ('dispatch', 'archival'))
), judged AS (
    SELECT w.*, f.lfn, f.fsize, mod(w.file_id * 7919 + w.site_id * 31, 10007)::float8 / 10007 AS u1,
           mod(w.file_id * 104729 + w.site_id * 17, 10009)::float8 / 10009 AS u2,
           CASE WHEN w.had_replica THEN EXISTS (SELECT 1 FROM datasets_filereplica AS r WHERE r.file_id = w.file_id
                                                AND r.site_id = w.site_id)
                WHEN w.sub_state = 'done' THEN true
                ELSE mod(w.file_id * 7 + w.site_id * 13, 100)
                     < CASE w.sub_state WHEN 'active' THEN 60 WHEN 'stuck' THEN 80 ELSE 40 END END AS present
    FROM wanted AS w JOIN datasets_file AS f ON f.id = w.file_id
), timed AS (
    SELECT judged.*, CASE WHEN present THEN 'done' WHEN sub_state = 'active' AND u2 < 0.03 THEN 'submitted'
                          WHEN sub_state = 'stuck' AND u2 < 0.5 THEN 'failed' ELSE 'queued' END AS state,
           CASE WHEN present OR sub_state = 'active' AND u2 < 0.03 THEN 0
                WHEN sub_state = 'stuck' AND u2 < 0.5 THEN 3
                WHEN sub_state = 'stuck' OR sub_state = 'active' AND u2 < 0.27 OR sub_state = 'suspended'
                     AND u2 < 0.2 THEN 1 + floor(u1 * 2)::int ELSE 0 END AS failures,
           LEAST(CASE WHEN present THEN sub_created
                      ELSE GREATEST(sub_created, coalesce(stuck_at - interval '1 day', %(now)s::timestamptz
                                    - CASE sub_state WHEN 'suspended' THEN interval '10 days'
                                      ELSE interval '2 days' END)) END
                 + mod(file_id, 300) * interval '1 second', %(now)s) AS requested,
           5 + fsize / (20000000 + u2 * 60000000) AS copy_s
    FROM judged
)
SELECT timed.*, CASE WHEN state = 'done' THEN LEAST(requested + copy_s * interval '1 second'
                     + u1 * GREATEST(sub_end - requested, interval '0'), %(now)s)
                     WHEN state = 'failed' THEN requested + u1 * (%(now)s::timestamptz - requested) END AS finished
FROM timed
"""
SOURCES_SQL = """
CREATE TEMP TABLE bench_sources AS
SELECT dataset_id, min(site_id) FILTER (WHERE copy = 1) AS first_site, min(site_id) FILTER (WHERE copy = 2) AS second_site
FROM (SELECT dataset_id, site_id, row_number() OVER (PARTITION BY dataset_id ORDER BY created_at, site_id) AS copy
      FROM datasets_datasetreplica) AS r
GROUP BY dataset_id
"""
NEW_FILE_REPLICA_SOURCE = """
FROM (SELECT DISTINCT ON (file_id, site_id) * FROM bench_wanted WHERE present AND NOT had_replica
      ORDER BY file_id, site_id, finished) AS w
JOIN datasets_dataset AS d ON d.id = w.dataset_id JOIN sites_site AS s ON s.id = w.site_id
ON CONFLICT DO NOTHING
"""
NEW_FILE_REPLICA_COLUMNS = {
    "file_id": "w.file_id",
    "site_id": "w.site_id",
    "pfn": "'srm://' || lower(s.name) || '.example.org/pnfs/atlas/' || d.series || '/' || d.name || '/' || w.lfn",
    "state": "'available'",
    "created_at": "w.finished",
}
NEW_DATASET_REPLICA_SOURCE = """
FROM (SELECT DISTINCT ON (file_id, site_id) * FROM bench_wanted WHERE present AND NOT had_replica
      ORDER BY file_id, site_id, finished) AS w
JOIN datasets_dataset AS d ON d.id = w.dataset_id
GROUP BY w.dataset_id, w.site_id
ON CONFLICT DO NOTHING
"""
NEW_DATASET_REPLICA_COLUMNS = {
    "dataset_id": "w.dataset_id", "site_id": "w.site_id", "files_present": "count(*)", "bytes_present": "sum(w.fsize)",
    "complete_at": "CASE WHEN count(*) >= min(d.n_files) THEN max(w.finished) END", "secondary": "true",
    "created_at": "min(w.finished)", "modified_at": "max(w.finished)",
}  # fmt: skip
ERRORS = [
    "SRM_FAILURE: transfer to srm://{dst}.example.org timed out after 3600 s (source {SRC})",
    "checksum mismatch: source ad:{a} != destination ad:{b}",
    "source replica at {SRC} not readable: No such file or directory",
    "site {DST}: No space left on device",
    "HTTPError: 503 Service Unavailable from https://{src}.example.org:8443/",
    "ConnectionRefusedError: [Errno 111] Connection refused by {dst}.example.org:2811",
]
TRANSFER_SOURCE = """
FROM bench_wanted AS w
LEFT JOIN bench_sources AS b ON b.dataset_id = w.dataset_id
JOIN sites_site AS dst ON dst.id = w.site_id
CROSS JOIN LATERAL (SELECT CASE WHEN w.state = 'queued' AND w.failures = 0 THEN NULL
                                WHEN b.first_site = w.site_id THEN b.second_site ELSE b.first_site END AS id) AS src
LEFT JOIN sites_site AS ss ON ss.id = src.id
WHERE w.sub_created >= %(horizon)s OR w.sub_state <> 'done'
ORDER BY w.requested, w.file_id
ON CONFLICT DO NOTHING
"""
TRANSFER_COLUMNS = {
    "file_id": "w.file_id",
    "destination_id": "w.site_id",
    "source_id": "src.id",
    "activity": "w.activity",
    "priority": "w.priority",
    "state": "w.state",
    "attempts": "w.failures + CASE WHEN w.state IN ('done', 'submitted') THEN 1 + (w.u2 < 0.08)::int ELSE 0 END",
    "error": "CASE WHEN w.failures > 0 THEN replace(replace(replace(replace(replace(replace((%(errors)s::text[])"
    "[1 + mod(w.file_id, cardinality(%(errors)s::text[]))], '{dst}', lower(dst.name)), '{DST}', dst.name),"
    " '{src}', lower(coalesce(ss.name, 'unknown'))), '{SRC}', coalesce(ss.name, 'unknown')),"
    " '{a}', substr(md5(w.lfn), 1, 8)), '{b}', substr(md5(w.lfn || 'x'), 1, 8)) ELSE '' END",
    "tool": "CASE WHEN w.state <> 'done' THEN '' WHEN w.u2 < 0.15 THEN 'local' ELSE 'http' END",
    "bytes": "CASE WHEN w.state = 'done' THEN w.fsize ELSE 0 END",
    "agent": "CASE WHEN w.state = 'submitted' THEN 'transfer-agent-' || (1 + mod(w.file_id, 4)) || '@ddm0'"
    " || (1 + mod(w.site_id, 3)) || '.example.org' ELSE '' END",
    "requested_at": "w.requested",
    "next_attempt_at": "CASE WHEN w.state = 'queued' AND w.failures > 0 THEN %(now)s::timestamptz"
    " + (w.u1 * 60 - 20) * interval '1 minute' ELSE w.requested END",
    "submitted_at": "CASE w.state WHEN 'done' THEN w.finished - (w.copy_s + w.u2 * 1200) * interval '1 second'"
    " WHEN 'submitted' THEN %(now)s::timestamptz - w.u1 * interval '15 minutes'"
    " WHEN 'failed' THEN w.finished - interval '10 minutes'"
    " ELSE CASE WHEN w.failures > 0 THEN w.requested + w.u1 * (%(now)s::timestamptz - w.requested) END END",
    "finished_at": "w.finished",
    "seconds": "CASE WHEN w.state = 'done' THEN w.copy_s END",
}
STUCK_REASON_SQL = """
UPDATE datasets_subscription AS s
SET reason = left(f.n || ' file(s) failed every transfer attempt; latest: ' || f.lfn || ': ' || f.error, 500)
FROM (SELECT DISTINCT ON (w.sub_id) w.sub_id, count(*) OVER (PARTITION BY w.sub_id) AS n, w.lfn, t.error
      FROM bench_wanted AS w
      JOIN datasets_transferrequest AS t ON t.file_id = w.file_id AND t.destination_id = w.site_id
      WHERE w.state = 'failed' ORDER BY w.sub_id, w.finished DESC) AS f
WHERE s.id = f.sub_id AND s.state = 'stuck'
"""
# Transfer outcomes in time (the copy that succeeded, the attempts that failed before), for the channel stats
# and the channel snapshots.
OUTCOMES_SQL = """
CREATE TEMP TABLE bench_outcomes AS
SELECT source_id, destination_id, finished_at AS at, 1 AS files_done, bytes AS bytes_done, 0 AS files_failed,
       seconds, '' AS error
FROM datasets_transferrequest WHERE state = 'done' AND source_id IS NOT NULL
UNION ALL
SELECT source_id, destination_id,
       CASE state WHEN 'done' THEN submitted_at - interval '1 hour' WHEN 'submitted' THEN submitted_at
            - interval '30 minutes' ELSE coalesce(finished_at, submitted_at) END,
       0, 0, attempts - (state IN ('done', 'submitted'))::int, 0,
       CASE WHEN error <> '' THEN error ELSE 'SRM_FAILURE: transfer timed out after 3600 s' END
FROM datasets_transferrequest WHERE source_id IS NOT NULL AND attempts > (state IN ('done', 'submitted'))::int
"""
CHANNEL_STAT_SOURCE = """
FROM bench_outcomes WHERE at >= %(horizon)s AND at <= %(now)s
GROUP BY source_id, destination_id, date_trunc('hour', at) ORDER BY date_trunc('hour', at), source_id, destination_id
"""
CHANNEL_STAT_COLUMNS = {
    "source_id": "source_id", "destination_id": "destination_id", "hour": "date_trunc('hour', at)",
    "files_done": "sum(files_done)", "bytes_done": "sum(bytes_done)", "files_failed": "sum(files_failed)",
    "seconds": "sum(seconds)", "last_error": "coalesce(max(error) FILTER (WHERE files_failed > 0), '')",
}  # fmt: skip
CALLBACK_SOURCE = """
FROM datasets_subscription AS s
WHERE s.activity IN ('dispatch', 'archival') OR s.activity = 'user' AND mod(s.id, 5) = 0 AND s.dataset_id IN
      (SELECT id FROM datasets_dataset WHERE kind = 'container')
ORDER BY s.id
"""
CALLBACK_COLUMNS = {
    "dataset_id": "s.dataset_id",
    "site_id": "s.site_id",
    "kind": "CASE s.activity WHEN 'dispatch' THEN 'activate_jobs' WHEN 'archival' THEN 'archive' ELSE 'http' END",
    "url": "CASE WHEN s.activity = 'user' THEN 'https://' || s.owner_name || '.cern.example.org/notify/' || s.id"
    " ELSE '' END",
    "owner_id": "s.owner_id",
    "owner_name": "s.owner_name",
    "state": "CASE WHEN s.state <> 'done' THEN 'waiting' WHEN s.activity = 'user' AND mod(s.id, 3) = 0 THEN 'failed'"
    " ELSE 'done' END",
    "attempts": "CASE WHEN s.state <> 'done' THEN 0 WHEN s.activity = 'user' AND mod(s.id, 3) = 0 THEN 8 ELSE 1 END",
    "last_error": "CASE WHEN s.state = 'done' AND s.activity = 'user' AND mod(s.id, 3) = 0"
    " THEN 'URLError: <urlopen error [Errno -2] Name or service not known>' ELSE '' END",
    "created_at": "s.created_at",
    "fired_at": "s.done_at",
    "delivered_at": "CASE WHEN s.state = 'done' AND NOT (s.activity = 'user' AND mod(s.id, 3) = 0)"
    " THEN s.done_at + interval '20 seconds' END",
}
STORAGE_SPACE_SQL = """
INSERT INTO sites_storagespace (site_id, used_bytes, free_bytes, total_bytes, reported_at, reported_by)
SELECT site_id, used, total - used, total, %(now)s::timestamptz - mod(site_id * 7, 30) * interval '1 minute',
       'storage-agent@ddm01.example.org'
FROM (SELECT site_id, (sum(bytes_present) * 1.08)::bigint AS used,
             (ceil(sum(bytes_present) * 1.6 / 1e13) * 1e13)::bigint AS total
      FROM datasets_datasetreplica GROUP BY site_id) AS s
ON CONFLICT DO NOTHING
"""

# ----------------------------------------------------------------------------------- history snapshots
# Snapshot k is taken at %(t0)s + k * %(step)s seconds. A state held over [t_in, t_out) is counted by the
# snapshots from ceil((t_in - t0) / step) to before ceil((t_out - t0) / step): +1 and -1 events summed up
# over k per (site, state); ended-in-interval counts go to the first snapshot at or after the end.

BUCKET = "GREATEST(0, ceil(extract(epoch FROM ({t}) - %(t0)s::timestamptz) / %(step)s))::int"


def _running_counts_sql(intervals):
    """A SELECT of (k, key, state, n) from `intervals` (a SELECT of key, state, t_in, t_out): how many
    intervals hold each snapshot time, for every snapshot with n > 0 (a count holds until its next change)."""
    return f"""
    WITH iv AS ({intervals}), ev AS (
        SELECT key, state, {BUCKET.format(t="t_in")} AS k, 1 AS d FROM iv WHERE t_in <= %(now)s
        UNION ALL
        SELECT key, state, {BUCKET.format(t="t_out")}, -1 FROM iv WHERE t_out IS NOT NULL AND t_out <= %(now)s
    ), agg AS (
        SELECT key, state, k, sum(d) AS d FROM ev WHERE k <= %(k_max)s GROUP BY 1, 2, 3
    ), run AS (
        SELECT key, state, k, sum(d) OVER w AS n, lead(k) OVER w AS next_k FROM agg
        WINDOW w AS (PARTITION BY key, state ORDER BY k)
    )
    SELECT g.k, key, state, n FROM run
    CROSS JOIN LATERAL generate_series(run.k, coalesce(run.next_k - 1, %(k_max)s)) AS g(k)
    WHERE n > 0
    """


JOB_INTERVALS = """
SELECT coalesce(j.computing_site_id, 0) AS key, s.state, s.t_in, s.t_out
FROM jobs_job AS j CROSS JOIN LATERAL (VALUES
    (j.status, j.creation_time, NULL::timestamptz, j.status IN ('defined', 'assigned', 'waiting')),
    ('activated', j.creation_time + interval '1 minute',
     CASE WHEN j.status = 'activated' THEN NULL ELSE coalesce(j.start_time, j.modification_time) END,
     j.status NOT IN ('defined', 'assigned', 'waiting')),
    ('running', j.start_time, CASE WHEN j.status IN ('running', 'starting') THEN NULL
                                   ELSE coalesce(j.end_time, j.modification_time) END, j.start_time IS NOT NULL),
    ('holding', coalesce(j.end_time, j.modification_time),
     CASE WHEN j.status IN ('holding', 'transferring') THEN NULL ELSE j.modification_time END,
     j.status IN ('holding', 'transferring') OR j.status IN ('finished', 'failed') AND j.end_time IS NOT NULL)
) AS s(state, t_in, t_out, keep)
WHERE s.keep AND (s.t_out IS NULL OR s.t_out > s.t_in AND s.t_out > %(t0)s)
"""
JOB_SNAPSHOT_SQL = f"""
INSERT INTO alarms_jobcountsnapshot (taken_at, site_id, status, n)
WITH live AS ({_running_counts_sql(JOB_INTERVALS)}), ended AS (
    SELECT {BUCKET.format(t="modification_time")} AS k, coalesce(computing_site_id, 0) AS key, status AS state,
           count(*) AS n
    FROM jobs_job WHERE status IN {FINAL} AND modification_time > %(t0)s AND modification_time <= %(last)s
    GROUP BY 1, 2, 3
), both_kinds AS (SELECT * FROM live UNION ALL SELECT * FROM ended)
SELECT %(t0)s::timestamptz + k * %(step)s * interval '1 second', key, state, n FROM both_kinds WHERE key <> 0
UNION ALL
SELECT %(t0)s::timestamptz + k * %(step)s * interval '1 second', NULL, state, sum(n) FROM both_kinds GROUP BY k, state
ORDER BY 1, 2
"""
TRANSFER_SNAPSHOT_SQL = f"""
INSERT INTO alarms_transferchannelsnapshot (taken_at, source_id, destination_id, files_done, files_failed, bytes_done,
                                            hour_files_done, hour_files_failed, hour_bytes_done)
WITH per_k AS (
    SELECT {BUCKET.format(t="at")} AS k, source_id, destination_id, sum(files_done) AS done, sum(files_failed) AS failed,
           sum(bytes_done) AS bytes
    FROM bench_outcomes WHERE at > %(t0)s AND at <= %(last)s GROUP BY 1, 2, 3
), channel AS (
    SELECT per_k.*, sum(done) OVER w AS h_done, sum(failed) OVER w AS h_failed, sum(bytes) OVER w AS h_bytes
    FROM per_k
    WINDOW w AS (PARTITION BY source_id, destination_id,
                 date_trunc('hour', %(t0)s::timestamptz + (k * %(step)s - 1) * interval '1 second') ORDER BY k)
)
SELECT %(t0)s::timestamptz + k * %(step)s * interval '1 second', source_id, destination_id, done, failed, bytes,
       h_done, h_failed, h_bytes
FROM channel
UNION ALL
SELECT %(t0)s::timestamptz + g.k * %(step)s * interval '1 second', NULL, NULL, coalesce(sum(done), 0),
       coalesce(sum(failed), 0), coalesce(sum(bytes), 0), 0, 0, 0
FROM generate_series(1, %(k_max)s) AS g(k) LEFT JOIN per_k ON per_k.k = g.k GROUP BY g.k
ORDER BY 1
"""
QUEUE_INTERVALS = """
SELECT destination_id AS key, 'queued' AS state, requested_at AS t_in,
       CASE WHEN state = 'queued' THEN NULL ELSE submitted_at END AS t_out
FROM datasets_transferrequest
UNION ALL
SELECT destination_id, 'submitted', submitted_at, CASE WHEN state = 'submitted' THEN NULL ELSE finished_at END
FROM datasets_transferrequest WHERE state IN ('done', 'failed', 'submitted')
"""
QUEUE_SNAPSHOT_SQL = f"""
INSERT INTO alarms_transferqueuesnapshot (taken_at, destination_id, queued, submitted)
WITH counts AS ({_running_counts_sql(QUEUE_INTERVALS)})
SELECT %(t0)s::timestamptz + k * %(step)s * interval '1 second', key, coalesce(sum(n) FILTER (WHERE state = 'queued'), 0),
       coalesce(sum(n) FILTER (WHERE state = 'submitted'), 0)
FROM counts GROUP BY k, key
UNION ALL
SELECT %(t0)s::timestamptz + g.k * %(step)s * interval '1 second', NULL,
       coalesce(sum(n) FILTER (WHERE state = 'queued'), 0), coalesce(sum(n) FILTER (WHERE state = 'submitted'), 0)
FROM generate_series(1, %(k_max)s) AS g(k) LEFT JOIN counts ON counts.k = g.k GROUP BY g.k
ORDER BY 1, 2
"""
# The catalog bytes at a site at each snapshot (replicas registered by then), its space report scaled alike.
STORAGE_SNAPSHOT_SQL = f"""
INSERT INTO alarms_storagesnapshot (taken_at, site_id, used_bytes, free_bytes, total_bytes, reported_at,
                                    catalog_bytes)
WITH per_k AS (
    SELECT r.site_id, {BUCKET.format(t="r.created_at")} AS k, sum(r.bytes_present) AS b
    FROM datasets_datasetreplica AS r GROUP BY 1, 2
), dense AS (
    SELECT s.site_id, s.total_bytes, g.k,
           sum(coalesce(per_k.b, 0)) OVER (PARTITION BY s.site_id ORDER BY g.k) AS catalog
    FROM sites_storagespace AS s CROSS JOIN generate_series(0, %(k_max)s) AS g(k)
    LEFT JOIN per_k ON per_k.site_id = s.site_id AND per_k.k = g.k
), rows AS (
    SELECT %(t0)s::timestamptz + k * %(step)s * interval '1 second' AS at, site_id, (catalog * 1.08)::bigint AS used,
           total_bytes AS total, catalog
    FROM dense WHERE k > 0
)
SELECT at, site_id, used, total - used, total, at - mod(site_id * 7, 30) * interval '1 minute', catalog FROM rows
UNION ALL
SELECT at, NULL, sum(used), sum(total - used), sum(total), NULL, sum(catalog) FROM rows GROUP BY at
ORDER BY 1, 2
"""

# ----------------------------------------------------------------------------------- steps


def _execute(sql_text, params=(), *, fetch=False):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql_text, params)
        return cursor.fetchall() if fetch else cursor.rowcount


def _analyze(*tables):
    _execute("ANALYZE " + ", ".join(f'"{table}"' for table in tables))


def _count(table):
    return _execute(f'SELECT count(*) FROM "{table}"', fetch=True)[0][0]


def _insert(model, columns, head, tail, params):
    """INSERT ... SELECT into `model` (a model or "app.Model"), its other columns at their defaults."""
    from django.apps import apps

    model = apps.get_model(model) if isinstance(model, str) else model
    sql_text, defaults = _insert_sql(model, columns, head, tail)
    return _execute(sql_text, {**defaults, **params})


def fill_tasks(now, range_params, production_accounts, job_chunk):
    """Tasks of the jobs (and a few without jobs), their input pieces, jobsets and status history."""
    from jobs.models import Job
    from tasks.models import JobSet, Task, TaskInput, TaskStatusLog

    started = time.perf_counter()
    _analyze("jobs_job", "datasets_dataset")  # autovacuum may be off: the plans need the new tables' statistics
    _insert(Task, TASK_COLUMNS, TASK_HEAD, TASK_SOURCE, range_params)
    first_id = Task.objects.order_by("-task_id").values_list("task_id", flat=True).first() or 0
    _insert(Task, EXTRA_TASK_COLUMNS, "", EXTRA_TASK_SOURCE,
            {**range_params, "extra": EXTRA_TASKS, "first_id": first_id, "owners": production_accounts, "now": now})  # fmt: skip
    _sync_identity(Task, "task_id")
    _analyze("tasks_task")
    last = Job.objects.order_by("-pandaid").values_list("pandaid", flat=True).first() or 0
    # Chunks of whole task spans: a task's jobs lie within one span of PandaIDs, and the pieces of a file
    # are numbered over the task's jobs.
    for first in range(0, last + 1, job_chunk):  # from 0: a span is g / TASK_SPAN
        _insert(TaskInput, TASK_INPUT_COLUMNS, "", TASK_INPUT_SOURCE,
                {**range_params, "first": first, "last": min(first + job_chunk - 1, last)})  # fmt: skip
    _execute(TASK_COUNTERS_SQL, [])
    _execute(JOBSET_SQL, [])
    _sync_identity(JobSet, "jobset_id")
    _insert(TaskStatusLog, TASK_LOG_COLUMNS, "", TASK_LOG_SOURCE, {})
    print(f"  {Task.objects.count():,} tasks, {_count('tasks_taskinput'):,} input pieces, "
          f"{JobSet.objects.count():,} jobsets, {TaskStatusLog.objects.count():,} task state changes "
          f"({time.perf_counter() - started:.1f} s)")  # fmt: skip


def fill_transfers(now, range_params, computing_ids, analysts):
    """Subscriptions, the file and dataset replicas their transfers made, the transfer requests, the hourly channel
    stats, replica callbacks and space reports."""
    started = time.perf_counter()
    horizon = now - timedelta(days=TRANSFER_DAYS)
    params = {**range_params, "now": now, "horizon": horizon, "computing": computing_ids, "analysts": analysts}
    _analyze("datasets_datasetreplica", "datasets_filereplica", "datasets_datasetfile", "datasets_file",
             "datasets_containermember")  # fmt: skip
    _insert("datasets.Subscription", SUBSCRIPTION_COLUMNS, SUBSCRIPTION_HEAD, SUBSCRIPTION_TAIL, params)
    print(f"  {_count('datasets_subscription'):,} subscriptions ({time.perf_counter() - started:.1f} s)")
    _execute("DROP TABLE IF EXISTS bench_wanted, bench_sources, bench_outcomes", [])
    _analyze("datasets_subscription")
    _execute(WANTED_SQL, params)
    _execute(SOURCES_SQL, [])
    _analyze("bench_wanted", "bench_sources")  # temporary tables are never analyzed by autovacuum
    new_replicas = _insert("datasets.FileReplica", NEW_FILE_REPLICA_COLUMNS, "", NEW_FILE_REPLICA_SOURCE, {})
    new_datasets = _insert("datasets.DatasetReplica", NEW_DATASET_REPLICA_COLUMNS, "", NEW_DATASET_REPLICA_SOURCE, {})
    print(f"  {new_replicas:,} file replicas and {new_datasets:,} dataset replicas copied by the subscriptions "
          f"({time.perf_counter() - started:.1f} s)")  # fmt: skip
    _insert("datasets.TransferRequest", TRANSFER_COLUMNS, "", TRANSFER_SOURCE, {**params, "errors": ERRORS})
    _analyze("datasets_transferrequest")
    _execute(STUCK_REASON_SQL, [])
    _execute(OUTCOMES_SQL, [])
    _analyze("bench_outcomes", "datasets_filereplica", "datasets_datasetreplica")
    channels = _insert("datasets.TransferChannelStat", CHANNEL_STAT_COLUMNS, "", CHANNEL_STAT_SOURCE, params)
    _insert("datasets.ReplicaCallback", CALLBACK_COLUMNS, "", CALLBACK_SOURCE, {})
    _execute(STORAGE_SPACE_SQL, params)
    states = _execute("SELECT state, count(*) FROM datasets_transferrequest GROUP BY 1 ORDER BY 2 DESC", fetch=True)
    print(f"  {_count('datasets_transferrequest'):,} transfer requests ("
          + ", ".join(f"{state} {n:,}" for state, n in states)
          + f"), {channels:,} channel hours, {_count('datasets_replicacallback'):,} callbacks "
          f"({time.perf_counter() - started:.1f} s)")  # fmt: skip


def fill_history(now):
    """The operations history (alarms snapshots) the home and site pages plot, from the jobs and transfers."""
    from django.conf import settings

    started = time.perf_counter()
    step = settings.PANDA["HISTORY_INTERVAL_SECONDS"]
    k_max = settings.PANDA["HISTORY_DAYS"] * 86400 // step
    last = now.replace(second=0, microsecond=0) - timedelta(minutes=now.minute % max(1, step // 60))
    params = {"now": now, "last": last, "t0": last - timedelta(seconds=k_max * step), "step": step, "k_max": k_max}
    counts = {name: _execute(sql_text, params) for name, sql_text in (
        ("jobs", JOB_SNAPSHOT_SQL), ("channels", TRANSFER_SNAPSHOT_SQL), ("queues", QUEUE_SNAPSHOT_SQL),
        ("storage", STORAGE_SNAPSHOT_SQL))}  # fmt: skip
    _execute("DROP TABLE IF EXISTS bench_wanted, bench_sources, bench_outcomes", [])
    print(f"  history: {k_max:,} snapshots every {step} s; rows: "
          + ", ".join(f"{name} {n:,}" for name, n in counts.items())
          + f" ({time.perf_counter() - started:.1f} s)")  # fmt: skip


def shift_flow_times(delta):
    """--refresh-times for the tables of this module: every time column moved forward by `delta`."""
    from django.db import connection

    columns = {
        "tasks_task": ["created_at", "modified_at", "status_changed_at", "ended_at"],
        "tasks_taskstatuslog": ["changed_at"], "tasks_jobset": ["created_at"],
        "datasets_subscription": ["created_at", "modified_at", "evaluated_at", "stuck_at", "repaired_at", "done_at"],
        "datasets_transferrequest": ["requested_at", "next_attempt_at", "submitted_at", "finished_at"],
        "datasets_replicacallback": ["created_at", "fired_at", "delivered_at"],
        "sites_storagespace": ["reported_at"], "alarms_jobcountsnapshot": ["taken_at"],
        "alarms_transferchannelsnapshot": ["taken_at"], "alarms_transferqueuesnapshot": ["taken_at"],
        "alarms_storagesnapshot": ["taken_at", "reported_at"],
    }  # fmt: skip
    with connection.cursor() as cursor:
        for table, names in columns.items():
            sets = ", ".join(f"{name} = {name} + %(delta)s" for name in names)
            cursor.execute(f"UPDATE {connection.ops.quote_name(table)} SET {sets}", {"delta": delta})
            cursor.execute(f"VACUUM (ANALYZE) {connection.ops.quote_name(table)}")
        # The hour rows stay at the top of an hour; unique (hour, channel) is checked row by row, so the rows
        # first go far away, then to their place.
        cursor.execute("UPDATE datasets_transferchannelstat SET hour = hour + interval '1000 years'")
        cursor.execute("UPDATE datasets_transferchannelstat SET hour = date_trunc('hour', hour - interval '1000 years'"
                       " + %(delta)s)", {"delta": delta})  # fmt: skip
        cursor.execute("VACUUM (ANALYZE) datasets_transferchannelstat")

"""Bulk reads and writes of the brokerage: input locality in one query; decisions and state changes in
one statement each per batch.

On PostgreSQL values go as array literals unnested server-side (jobs/services/bulk_sql.py), like
datasets/services/bulk_sql.py; the SQL text is constant and every value a bound parameter. Other
databases take the ORM path with the same results.
"""

import json
from collections import defaultdict

from django.db import connection

from datasets.choices import ReplicaState
from datasets.models import File, FileReplica
from pandamon.errors import Conflict

from ..choices import FileType, JobStatus
from ..models import BrokerageContext, BrokerageDecision, Job, JobFile
from . import state
from .bulk_sql import int_array, postgres, text_array

EXAMPLE_SITES = 5  # rejected sites named per reason in a context
ACTOR = "brokerage"
# The only transitions move_jobs performs; the state machine allows them (checked at import).
MOVES = (JobStatus.ACTIVATED, JobStatus.ASSIGNED)
assert all(state.is_allowed(JobStatus.DEFINED, new) for new in MOVES)
WAITING_FOR_INPUT = "; waiting for input to be transferred"

INPUT_REPLICAS = """
SELECT jf.job_id, jf.lfn, f.id, f.fsize, r.site_id
FROM jobs_jobfile AS jf
JOIN datasets_file AS f ON f.lfn = jf.lfn
LEFT JOIN datasets_filereplica AS r ON r.file_id = f.id AND r.state = %s
WHERE jf.job_id = ANY(%s::bigint[]) AND jf.type = %s
"""
# One row per job: a later decision (a job tried again) replaces the earlier one.
UPSERT_DECISIONS = """
INSERT INTO jobs_brokeragedecision (job_id, decided_at, outcome, site_id, candidates, context_id, diag)
SELECT t.job_id, %s, t.outcome, t.site_id, t.candidates::jsonb, t.context_id, t.diag
FROM unnest(%s::bigint[], %s::text[], %s::bigint[], %s::text[], %s::bigint[], %s::text[])
     AS t(job_id, outcome, site_id, candidates, context_id, diag)
ON CONFLICT (job_id) DO UPDATE SET
    decided_at = EXCLUDED.decided_at, outcome = EXCLUDED.outcome, site_id = EXCLUDED.site_id,
    candidates = EXCLUDED.candidates, context_id = EXCLUDED.context_id, diag = EXCLUDED.diag
"""
# Brokered jobs: defined -> activated/assigned at their site, with their JobStatusLog rows (reason
# "brokered to <site>[; waiting for input to be transferred]"), in one statement; jobs.services.state
# would take two per site and state. The compare-and-set on 'defined' holds as in state.transition_many:
# the caller locked the rows.
MOVE_JOBS = """
WITH moved AS (
    UPDATE jobs_job AS j
    SET status = t.status, computing_site_id = t.site_id, cloud = c.name, brokered_at = %(now)s,
        state_change_time = %(now)s, modification_time = %(now)s, brokerage_error_code = 0, brokerage_error_diag = ''
    FROM unnest(%(ids)s::bigint[], %(states)s::text[], %(sites)s::bigint[]) AS t(pandaid, status, site_id)
    JOIN sites_site AS s ON s.id = t.site_id
    JOIN sites_cloud AS c ON c.id = s.cloud_id
    WHERE j.pandaid = t.pandaid AND j.status = 'defined'
    RETURNING j.pandaid, t.status, s.name
)
INSERT INTO jobs_jobstatuslog (job_id, old_status, new_status, changed_at, actor, reason)
SELECT pandaid, 'defined', status, %(now)s, %(actor)s,
       'brokered to ' || name || CASE WHEN status = 'assigned' THEN %(waiting)s ELSE '' END
FROM moved
"""
# A held job (a quota keeps it back) is touched (modification_time), like a throttled one it is waiting
# for its turn, not stuck: the defined timeout (watchers.fail_defined_timeouts) is for jobs no site fits.
NOTE_REFUSALS = """
UPDATE jobs_job AS j
SET brokered_at = %(now)s, brokerage_error_code = t.code, brokerage_error_diag = t.diag,
    modification_time = CASE WHEN t.code = %(held)s THEN %(now)s ELSE j.modification_time END
FROM unnest(%(ids)s::bigint[], %(codes)s::int[], %(diags)s::text[]) AS t(pandaid, code, diag)
WHERE j.pandaid = t.pandaid
"""
HELD = 102  # jobs.services.brokerage.HELD


def input_replicas(pandaids):
    """[(pandaid, lfn, file id, fsize, site id or None), ...]: the jobs' catalogued inputs and their
    available replicas."""
    if not pandaids:
        return []
    if postgres():
        with connection.cursor() as cursor:
            cursor.execute(INPUT_REPLICAS, [ReplicaState.AVAILABLE, int_array(pandaids), FileType.INPUT])
            return cursor.fetchall()
    inputs = list(JobFile.objects.filter(job_id__in=pandaids, type=FileType.INPUT).values_list("job_id", "lfn"))
    files = dict(File.objects.filter(lfn__in={lfn for _, lfn in inputs}).values_list("lfn", "pk"))
    sizes = dict(File.objects.filter(pk__in=files.values()).values_list("pk", "fsize"))
    where = defaultdict(list)
    replicas = FileReplica.objects.filter(file_id__in=files.values(), state=ReplicaState.AVAILABLE)
    for file_id, site_id in replicas.values_list("file_id", "site_id"):
        where[file_id].append(site_id)
    rows = []
    for job_id, lfn in inputs:
        if lfn in files:
            pk = files[lfn]
            rows += [(job_id, lfn, pk, sizes[pk], site_id) for site_id in where[pk] or [None]]
    return rows


def candidates_json(candidates, sites):
    """[[site id, weight, input share], ...] as compact JSON: 3 significant digits, shares 0 and 1 as integers."""
    parts = []
    for i, weight, share in candidates:
        share_text = "1" if share >= 1 else "0" if share <= 0 else f"{share:.2g}"
        parts.append(f"[{sites[i].pk},{weight:.3g},{share_text}]")
    return "[" + ",".join(parts) + "]"


def record_decisions(decisions, sites, now):
    """Write the contexts of the decisions' groups and one BrokerageDecision per job (replacing an older one)."""
    groups = {}
    for decision in decisions:
        groups.setdefault(id(decision.group), decision.group)
    contexts = [
        BrokerageContext(
            created_at=now,
            needs=group.needs,
            n_sites=group.n_sites,
            n_eligible=len(group.eligible),
            rejected={
                reason: {"n": len(names), "sites": names[:EXAMPLE_SITES]} for reason, names in group.rejected.items()
            },
        )
        for group in groups.values()
    ]
    BrokerageContext.objects.bulk_create(contexts)
    for group, context in zip(groups.values(), contexts, strict=True):
        group.context_id = context.pk
    site_ids = [None if d.site_index is None else sites[d.site_index].pk for d in decisions]
    if postgres():
        params = [
            now,
            int_array(d.job.pandaid for d in decisions),
            text_array(d.outcome for d in decisions),
            int_array(site_ids),
            text_array(candidates_json(d.candidates or (), sites) for d in decisions),
            int_array(d.group.context_id for d in decisions),
            text_array(d.diag[:250] for d in decisions),
        ]
        with connection.cursor() as cursor:
            cursor.execute(UPSERT_DECISIONS, params)
        return
    rows = [
        BrokerageDecision(
            job_id=d.job.pandaid,
            decided_at=now,
            outcome=d.outcome,
            site_id=site_id,
            candidates=json.loads(candidates_json(d.candidates or (), sites)),
            context_id=d.group.context_id,
            diag=d.diag[:250],
        )  # fmt: skip
        for d, site_id in zip(decisions, site_ids, strict=True)
    ]
    BrokerageDecision.objects.bulk_create(
        rows, batch_size=500, update_conflicts=True, unique_fields=["job"],
        update_fields=["decided_at", "outcome", "site", "candidates", "context", "diag"],
    )  # fmt: skip


def move_jobs(moves, now):
    """[(job, new state, site), ...]: the brokered jobs leave `defined` for their site."""
    if not moves:
        return
    if not postgres():
        _move_jobs_orm(moves, now)
        return
    params = {
        "now": now, "actor": ACTOR, "waiting": WAITING_FOR_INPUT, "ids": int_array(job.pandaid for job, _, _ in moves),
        "states": text_array(new for _, new, _ in moves), "sites": int_array(site.pk for _, _, site in moves),
    }  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(MOVE_JOBS, params)
        moved = cursor.rowcount
    if moved != len(moves):
        raise Conflict(f"{len(moves) - moved} job(s) changed state concurrently; try again")
    for job, new, site in moves:
        job.status, job.computing_site, job.cloud, job.brokered_at = new, site, site.cloud.name, now


def _move_jobs_orm(moves, now):
    groups = {}
    for job, new, site in moves:
        groups.setdefault((new, site.pk), (site, []))[1].append(job)
    for (new, _), (site, jobs) in groups.items():
        reason = f"brokered to {site.name}" + (WAITING_FOR_INPUT if new == JobStatus.ASSIGNED else "")
        state.transition_many(
            jobs, new, actor=ACTOR, reason=reason, now=now, computing_site=site, cloud=site.cloud.name,
            brokered_at=now, brokerage_error_code=0, brokerage_error_diag="",
        )  # fmt: skip


def note_refusals(decisions, now):
    """Jobs no site took stay defined; they carry the brokerage code and diagnostic (and when it was tried)."""
    if not decisions:
        return
    if postgres():
        params = {"now": now, "held": HELD, "ids": int_array(d.job.pandaid for d in decisions),
                  "codes": int_array(d.code for d in decisions), "diags": text_array(d.diag[:250] for d in decisions)}  # fmt: skip
        with connection.cursor() as cursor:
            cursor.execute(NOTE_REFUSALS, params)
        return
    by_diag = defaultdict(list)
    for d in decisions:
        by_diag[(d.code, d.diag[:250])].append(d.job.pandaid)
    for (code, diag), ids in by_diag.items():
        touched = {"modification_time": now} if code == HELD else {}
        Job.objects.filter(pandaid__in=ids).update(
            brokered_at=now, brokerage_error_code=code, brokerage_error_diag=diag, **touched
        )

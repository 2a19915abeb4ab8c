"""getJob on PostgreSQL in one statement: lock, send, log the state change, fetch the files.

One round trip and one commit instead of seven round trips and two commits, and
no ORM query compilation on the hottest path of the system (bench/dispatch.py
measures the difference). The SQL text is constant; every value is a bound
parameter. It performs exactly one state transition, activated -> sent, which
the state machine allows (checked below), and writes the JobStatusLog row for it
as jobs.services.state would.
"""

import re
from types import SimpleNamespace

from django.conf import settings
from django.db import connection

from ..choices import JobStatus
from . import state

assert state.is_allowed(JobStatus.ACTIVATED, JobStatus.SENT)

JOB_FIELDS = (
    "pandaid", "job_name", "job_definition_id", "jobset_id", "task_id", "req_id", "prod_source_label",
    "processing_type", "transformation", "job_parameters", "sw_release", "homepackage", "cmt_config",
    "container_name", "attempt_nr", "current_priority", "core_count", "min_ram_count", "max_disk_count",
    "max_cpu_count", "max_walltime", "cloud", "destination_se", "prod_user_id", "prod_user_name", "n_sent",
    "special_handling", "status",
)  # fmt: skip
FILE_FIELDS = ("id", "type", "lfn", "guid", "fsize", "checksum", "scope", "dataset", "prod_dblock",
               "dispatch_dblock", "destination_dblock")  # fmt: skip
_FILE_JSON = "json_build_object(" + ", ".join(f"'{name}', f.{name}" for name in FILE_FIELDS) + ")"

# The candidates are a MATERIALIZED CTE: as a plain `IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)`
# subquery the planner may run the subquery more than once and send more than n jobs.
DISPATCH_SQL = f"""
WITH candidates AS MATERIALIZED (
    SELECT pandaid FROM jobs_job
    WHERE status = 'activated' AND computing_site_id = %(site)s
      AND (%(labels)s::text[] IS NULL OR prod_source_label = ANY(%(labels)s::text[]))
      AND (%(mem)s::int IS NULL OR min_ram_count <= %(mem)s::int)
      AND (%(disk)s::int IS NULL OR max_disk_count <= %(disk)s::int)
    ORDER BY current_priority DESC, pandaid
    LIMIT %(n_jobs)s
    FOR UPDATE SKIP LOCKED
), picked AS (
    UPDATE jobs_job SET status = 'sent', modification_time = now(), state_change_time = now(),
           modification_host = %(node)s, n_sent = n_sent + 1
    WHERE pandaid IN (SELECT pandaid FROM candidates) AND status = 'activated'
    RETURNING {", ".join(JOB_FIELDS)}
), logged AS (
    INSERT INTO jobs_jobstatuslog (job_id, old_status, new_status, changed_at, actor, reason)
    SELECT pandaid, 'activated', 'sent', now(), %(actor)s, %(reason)s FROM picked
)
SELECT picked.*, (SELECT coalesce(json_agg({_FILE_JSON} ORDER BY f.id), '[]')
                  FROM jobs_jobfile AS f WHERE f.job_id = picked.pandaid) AS files,
       s.key_id AS signature_key_id, s.signature AS signature_b64
FROM picked LEFT JOIN LATERAL (
    SELECT key_id, signature FROM jobs_jobsignature WHERE job_id = picked.pandaid LIMIT 1
) AS s ON true
ORDER BY picked.current_priority DESC, picked.pandaid
"""  # RETURNING has no order of its own: pilots get the best job first.
# The signature is a LATERAL lookup by primary key per sent job (LIMIT 1 keeps the planner from
# flattening it into a join): the generic plan below, made without knowing how many jobs are
# picked, otherwise hashed the whole signature table.
# The signature made at submission (jobs/services/signatures.py) comes along: getJob signs nothing itself.


# The statement is PREPAREd once per database connection and EXECUTEd with its parameters, with a
# generic plan: planning it (four CTEs, two subplans) took 0.5 ms of every call, as much as running
# it, on bench/dispatch.py's data. PostgreSQL's own choice kept planning anew: it judged the generic
# plan dearer because it cannot know the LIMIT, so the connection forces generic plans. That setting
# reaches only prepared statements, and this is the project's only one (Django and psycopg2 prepare
# none). A transaction-pooling PgBouncer does not keep a session's prepared statements: such
# deployments set PANDA_DISPATCH_PREPARED=0.
PARAMETER_TYPES = {
    "site": "bigint", "labels": "text[]", "mem": "int", "disk": "int", "n_jobs": "int",
    "node": "text", "actor": "text", "reason": "text",
}  # fmt: skip
PARAMETERS = tuple(PARAMETER_TYPES)
PREPARED_NAME = "pandamon_dispatch_jobs"
PREPARE_SQL = f"PREPARE {PREPARED_NAME} ({', '.join(PARAMETER_TYPES.values())}) AS " + re.sub(
    r"%\((\w+)\)s", lambda match: f"${PARAMETERS.index(match.group(1)) + 1}", DISPATCH_SQL
)
EXECUTE_SQL = f"EXECUTE {PREPARED_NAME} ({', '.join(['%s'] * len(PARAMETERS))})"


def dispatch(*, site, request, n_jobs, labels):
    """[(job, files), ...] sent to this pilot, as light row objects with the attributes of Job and JobFile."""
    from .dispatcher import SENT_REASON, pilot_actor

    params = {
        "site": site.pk, "n_jobs": n_jobs, "node": request.node[:128], "labels": list(labels) if labels else None,
        "mem": request.memory_mb or None, "disk": request.disk_mb or None,
        "actor": pilot_actor(request.node), "reason": SENT_REASON,
    }  # fmt: skip
    with connection.cursor() as cursor:
        if settings.PANDA["DISPATCH_PREPARED"]:
            prepare_once(cursor, PREPARED_NAME, PREPARE_SQL)
            cursor.execute(EXECUTE_SQL, [params[name] for name in PARAMETERS])
        else:
            cursor.execute(DISPATCH_SQL, params)
        names = [column.name for column in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return [_job_and_files(row) for row in rows]


def prepare_once(cursor, name, prepare_sql):
    """Run `prepare_sql` (PREPARE `name` ...) on this connection unless it already was: a reconnect
    starts afresh, as the set of prepared names belongs to the raw connection it was made on."""
    raw_connection = connection.connection
    made_on, prepared = getattr(connection, "pandamon_prepared", (None, set()))
    if made_on is not raw_connection:
        prepared = set()
        connection.pandamon_prepared = (raw_connection, prepared)
    if name not in prepared:
        # Session objects, both: they survive a rollback of the transaction around them.
        cursor.execute(prepare_sql)
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        prepared.add(name)


def _job_and_files(row):
    # Plain row objects, not model instances: building a Job fills ~90 defaults per call
    # on the hottest path, and the description only reads these attributes.
    files = [SimpleNamespace(**item) for item in row.pop("files")]
    return SimpleNamespace(**row), files

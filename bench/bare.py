"""POST /bench/bare-getjob: the dispatch statement alone, the ceiling for getJob.

POST /bench/bare-getjob-prepared: the same, PREPAREd once per connection with a generic plan.

One UPDATE ... WHERE pandaid IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING in
autocommit: no authentication, no file loading, no status log, no pilot counters.
Whatever the full getJob costs above this is the price of those features.
The statement keeps the brief's `IN (subquery)` form; if the planner ever ran the LIMIT
subquery twice a call would return too many jobs, which bench/load.py counts as an error
(the plan seen on PostgreSQL 15 hashes the subquery's result once).
"""

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from jobs.services.dispatch_sql import prepare_once
from sites.models import Site

DISPATCH_SQL = """
UPDATE jobs_job SET status = 'sent', modification_time = now(), state_change_time = now()
WHERE pandaid IN (
    SELECT pandaid FROM jobs_job
    WHERE status = 'activated' AND computing_site_id = %s
    ORDER BY current_priority DESC, pandaid
    LIMIT %s
    FOR UPDATE SKIP LOCKED
)
RETURNING pandaid
"""
MAX_JOBS_PER_CALL = 100
# The same statement PREPAREd with a generic plan, as getJob's own statement is
# (jobs/services/dispatch_sql.py): the ceiling with planning taken out on both sides.
PREPARE_SQL = "PREPARE bench_bare_dispatch (bigint, int) AS " + DISPATCH_SQL.replace("%s", "$1", 1).replace(
    "%s", "$2", 1
)
EXECUTE_SQL = "EXECUTE bench_bare_dispatch (%s, %s)"

# Site name -> id, per worker process: sites never change during a benchmark,
# and the ceiling should not pay a lookup query on every call.
_site_ids = {}


def _site_id(name):
    if name not in _site_ids:
        site_id = Site.objects.filter(name=name).values_list("pk", flat=True).first()
        if site_id is None:
            return None  # not cached: a typo must not stick for the worker's lifetime
        _site_ids[name] = site_id
    return _site_ids[name]


def _n_jobs(raw):
    try:
        n_jobs = int(raw or 1)
    except ValueError:
        return None
    return n_jobs if 1 <= n_jobs <= MAX_JOBS_PER_CALL else None


def _bare_dispatch(request, *, prepared):
    site_id = _site_id(request.POST.get("siteName", "").strip())
    n_jobs = _n_jobs(request.POST.get("nJobs"))
    if site_id is None or n_jobs is None:
        return JsonResponse({"StatusCode": 50, "errorDialog": "unknown siteName or bad nJobs"}, status=400)
    with connection.cursor() as cursor:
        if prepared:
            prepare_once(cursor, "bench_bare_dispatch", PREPARE_SQL)
            cursor.execute(EXECUTE_SQL, [site_id, n_jobs])
        else:
            cursor.execute(DISPATCH_SQL, [site_id, n_jobs])
        pandaids = [row[0] for row in cursor.fetchall()]
    return JsonResponse({"StatusCode": 0 if pandaids else 20, "PandaIDs": pandaids})


@csrf_exempt
@require_POST
def bare_getjob(request):
    return _bare_dispatch(request, prepared=False)


@csrf_exempt
@require_POST
def bare_getjob_prepared(request):
    return _bare_dispatch(request, prepared=True)

"""Page server times at scale: every portal page against a million jobs and a 1.3-million-file catalog.

    cd /work/main && .venv/bin/python bench/pages.py [--reuse] [--repeat 15] [--explain] [--only /jobs/]

Recreates and fills its own PostgreSQL database (`pandamon_bench_pages`, bench/pages_fill.py: set-wise SQL,
a few minutes) unless --reuse, then calls each page in-process through Django's test
Client (the whole middleware stack, no HTTP) `--repeat` times after `--warmup` calls and
prints per page: the median and p90 of Django's own time (the Server-Timing header of
pandamon/middleware.py), the number of SQL statements, their time inside the page, the
"bare SQL" time (the same statements with the same parameters, captured with
connection.execute_wrapper and re-executed directly on the driver's cursor after each
page call, median of `--repeat` replays), the ratio page / bare SQL, and the slowest
statements of each page (--explain: with EXPLAIN ANALYZE).
Pages whose route is missing or that answer 404 are reported as not installed and
skipped, so the list can name pages before they exist. Target: every page under 500 ms.
"""

import argparse
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: make `bench` importable

from bench import env, fill, pages_fill, sysinfo  # noqa: E402
from bench.catalog import server_ms  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/pandamon_bench_pages"
TARGET_MS = 500
PG_SETTINGS = ["shared_buffers", "work_mem", "effective_cache_size", "random_page_cost", "jit",
               "max_parallel_workers_per_gather", "synchronous_commit", "autovacuum"]  # fmt: skip
TRANSACTION_CONTROL = re.compile(r"^\s*(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT)\b", re.IGNORECASE)
STALE_AFTER = timedelta(hours=1)
COUNTED_MODELS = [
    "jobs.Job", "jobs.JobStatusLog", "jobs.JobFile", "sites.Site", "datasets.Dataset", "datasets.DatasetVersion",
    "datasets.File", "datasets.DatasetFile", "datasets.ContainerMember", "datasets.FileReplica",
    "datasets.DatasetReplica", "tasks.Task", "tasks.TaskInput", "tasks.JobSet", "tasks.TaskStatusLog",
    "datasets.Subscription", "datasets.TransferRequest", "datasets.TransferChannelStat", "datasets.ReplicaCallback",
    "alarms.JobCountSnapshot", "alarms.TransferChannelSnapshot", "alarms.TransferQueueSnapshot",
    "alarms.StorageSnapshot",
]  # fmt: skip


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--reuse", action="store_true", help="skip the fill: measure the data already there")
    parser.add_argument("--refresh-times", action="store_true",
                        help="with --reuse: move every job time forward so the data is as fresh as just filled")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=15, help="measured calls per page (and bare SQL replays)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured calls per page first")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of each page's slowest statement")
    parser.add_argument("--top", type=int, default=1, help="print this many slowest statements per page")
    parser.add_argument("--only", action="append", default=[], help="measure only URLs containing this (repeatable)")
    parser.add_argument("--url", action="append", default=[], help="an extra URL to measure (repeatable)")
    parser.add_argument("--clear-cache", action="store_true",
                        help="clear Django's cache before every call (pages that cache are then measured cold)")  # fmt: skip
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="pg_settings",
                        help="a PostgreSQL setting for the measuring session, e.g. jit=off (repeatable)")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30, help="the jobs span this many days")
    parser.add_argument("--recent-days", type=int, default=3, help="days at the full rate, --recent-per-day")
    parser.add_argument("--recent-per-day", type=int, default=150_000)
    parser.add_argument("--detail-days", type=float, default=3, help="jobs of these last days get history and files")
    parser.add_argument("--datasets", type=int, default=25_000)
    parser.add_argument("--files", type=int, default=1_300_000)
    args = parser.parse_args(argv)
    if any("=" not in pair for pair in args.pg_settings):
        parser.error("--set takes NAME=VALUE")
    if args.recent_days >= args.days or args.repeat < 1 or args.warmup < 0:
        parser.error("need --recent-days < --days, --repeat >= 1 and --warmup >= 0")
    if args.files < catalog_min_files(args.datasets):
        parser.error(f"need --files >= {catalog_min_files(args.datasets):,} for {args.datasets:,} datasets")
    return args


def catalog_min_files(n_datasets):
    from bench.catalog import BIG_DATASET_FILES

    return BIG_DATASET_FILES + n_datasets - 1


# ----------------------------------------------------------------------------------- the pages


@dataclass(frozen=True)
class Targets:
    """Objects the page URLs name: the busiest ones, so each page shows as much as it ever will."""

    busy_site: str
    task_id: int
    user: str
    pandaid: int
    dataset: str
    lfn: str
    replica_site: str
    # The data-flow and task pages' targets (None when the data has none: their URLs are left out).
    subscription: int | None = None  # the live subscription of the biggest dataset
    container_subscription: int | None = None  # a live container subscription (its page lists the members)
    subscribed_dataset: str | None = None  # the first one's dataset (the transfer list's dataset= link)
    destination: str | None = None  # the site with most transfer requests
    task: int | None = None  # the running task with most input pieces
    task_owner: str | None = None  # the owner of most tasks changed in 7 days


def pick_targets():
    from django.db.models import Count
    from django.utils import timezone

    from datasets.models import Dataset, DatasetReplica, Subscription, TransferRequest
    from jobs.models import Job, JobFile
    from tasks.models import Task

    now = timezone.now()
    recent = Job.objects.filter(modification_time__gte=now - timedelta(hours=24)).exclude(computing_site=None)
    busy = recent.values_list("computing_site__name").annotate(n=Count("pk")).order_by("-n").first()
    week = Job.objects.filter(modification_time__gte=now - timedelta(days=7), prod_source_label="user")
    user = week.values_list("prod_user_name").annotate(n=Count("pk")).order_by("-n").first()
    failed_input = (
        JobFile.objects.filter(job__status="failed", type="input").order_by("-job_id").values_list("job_id", "lfn")
    ).first()  # fmt: skip
    replica_site = DatasetReplica.objects.values_list("site__name").annotate(n=Count("pk")).order_by("-n").first()
    if not (busy and user and failed_input and replica_site):
        sys.exit("the bench database lacks jobs, files or replicas: run without --reuse to fill it")
    live = Subscription.objects.exclude(state="done")
    subscription = live.order_by("-dataset__n_files", "-id").values_list("pk", "dataset__name").first()
    destination = TransferRequest.objects.values_list("destination__name").annotate(n=Count("pk")).order_by("-n")
    destination = destination.first()
    owner = Task.objects.filter(modified_at__gte=now - timedelta(days=7)).values_list("owner_name")
    owner = owner.annotate(n=Count("pk")).order_by("-n").first()
    return Targets(
        busy_site=busy[0],
        task_id=Job.objects.order_by("-pandaid").values_list("task_id", flat=True).first(),
        user=user[0],
        pandaid=failed_input[0],
        dataset=Dataset.objects.order_by("-n_files").values_list("name", flat=True).first(),
        lfn=failed_input[1],
        replica_site=replica_site[0],
        subscription=subscription and subscription[0],
        container_subscription=live.filter(dataset__kind="container").order_by("-id").values_list("pk", flat=True)
        .first(),
        subscribed_dataset=subscription and subscription[1],
        destination=destination and destination[0],
        task=Task.objects.filter(status="running").order_by("-files_total", "-task_id").values_list("pk", flat=True)
        .first(),
        task_owner=owner and owner[0],
    )  # fmt: skip


def page_urls(t):
    """Every page of the portal, the ones still being written included (they are skipped until they exist)."""
    return [
        "/",
        "/jobs/",
        "/jobs/?jobstatus=failed",
        f"/jobs/?computingsite={quote(t.busy_site)}&hours=24",
        "/jobs/?jobstatus=running&sortby=-modificationtime",
        f"/jobs/?taskid={t.task_id}",
        f"/jobs/?produsername={quote(t.user)}&days=7",
        f"/jobs/{t.pandaid}/",
        "/sites/",
        f"/sites/{quote(t.busy_site)}/",
        f"/search/?q={t.pandaid}",
        "/datasets/",
        "/datasets/?category=mc",
        f"/datasets/?site={quote(t.replica_site)}",
        f"/datasets/{quote(t.dataset)}/",
        f"/files/{quote(t.lfn)}/",
        "/blocks/",
        "/errors/",
        "/plots/",
        "/users/",
        f"/users/{quote(t.user)}/",
        f"/wns/{quote(t.busy_site)}/",
        "/summary/usage/",
        *flow_urls(t),
    ]


def flow_urls(t):
    """The data-flow and task pages (bench/pages_fill_flow.py's data); those whose target is missing are left out."""
    urls = ["/subscriptions/", "/subscriptions/?state=stuck"]
    if t.destination:
        urls.append(f"/subscriptions/?site={quote(t.destination)}")
    urls += [f"/subscriptions/{pk}/" for pk in (t.subscription, t.container_subscription) if pk]
    urls += ["/transfers/", "/transfers/?state=failed"]
    if t.destination:
        urls.append(f"/transfers/?destination={quote(t.destination)}")
    if t.subscribed_dataset:
        urls.append(f"/transfers/?dataset={quote(t.subscribed_dataset)}")
    urls += ["/transfers/channels/", "/transfers/channels/?days=21", "/tasks/", "/tasks/?status=running"]
    if t.task_owner:
        urls.append(f"/tasks/?username={quote(t.task_owner)}")
    if t.task:
        urls.append(f"/tasks/{t.task}/")
    # DDM operations and the scheduler read the same catalog, subscriptions and transfers (their own
    # rules, decisions, deletions and pilots are empty in this fill).
    urls += ["/ddm/", "/ddm/channels/", "/ddm/placements/", "/scheduler/"]
    return urls


# ----------------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Statement:
    sql: str
    params: object
    many: bool
    ms: float  # inside the page


@dataclass
class Recorder:
    """A connection.execute_wrapper keeping every statement a page runs, exactly as sent to the driver."""

    statements: list = field(default_factory=list)

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.statements.append(Statement(sql, params, many, (time.perf_counter() - started) * 1000))


@dataclass
class PageResult:
    url: str
    status: int
    server_ms: list
    statements: list
    bare_ms: list
    statement_ms: list  # per statement, median over the replays
    others_cpu: float

    @property
    def median(self):
        return statistics.median(self.server_ms)

    @property
    def p90(self):
        return percentile(self.server_ms, 90)

    @property
    def bare(self):
        return statistics.median(self.bare_ms) if self.bare_ms else 0.0

    @property
    def in_page_db_ms(self):
        return sum(statement.ms for statement in self.statements)

    def slowest(self, n=1):
        """The n slowest statements as (statement, median ms of its replays), slowest first."""
        order = sorted(range(len(self.statement_ms)), key=self.statement_ms.__getitem__, reverse=True)
        return [(self.statements[index], self.statement_ms[index]) for index in order[:n]]


@dataclass
class Skipped:
    url: str
    reason: str


def percentile(values, pct):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))]


def installed(url):
    from django.urls import Resolver404, resolve

    try:
        resolve(urlsplit(url).path)
        return True
    except Resolver404:
        return False


class PageCaller:
    """Django's test Client without the test environment: production settings, the real middleware."""

    def __init__(self, clear_cache):
        from django.test import Client

        self.client = Client(raise_request_exception=False, HTTP_HOST="127.0.0.1")
        self.clear_cache = clear_cache

    def get(self, url):
        if self.clear_cache:
            from django.core.cache import cache

            cache.clear()
        return self.client.get(url)


def measure_page(caller, url, args, backend_pid):
    """Warm up, record the page's statements once, then alternate a timed page call and a replay of its
    statements `repeat` times, so that load from elsewhere on the machine hits both figures alike."""
    from django.db import connection

    if not installed(url):
        return Skipped(url, "not installed (no route)")
    for _ in range(max(1, args.warmup)):
        response = caller.get(url)
    if response.status_code == 404:
        return Skipped(url, "not installed (404)")
    if response.status_code >= 400:
        return Skipped(url, f"answered {response.status_code}: {_text(response)[:150]}")
    recorder = Recorder()
    with connection.execute_wrapper(recorder):
        caller.get(url)
    statements = [s for s in recorder.statements if not TRANSACTION_CONTROL.match(s.sql)]
    times, totals, per_statement = [], [], [[] for _ in statements]
    before, started = sysinfo.cpu_snapshot(os.getpid(), [backend_pid]), time.perf_counter()
    for _ in range(args.repeat):
        times.append(server_ms(caller.get(url)))
        each = replay_once(statements)
        totals.append(sum(each))
        for index, ms in enumerate(each):
            per_statement[index].append(ms)
    usage = sysinfo.cpu_usage(before, sysinfo.cpu_snapshot(os.getpid(), [backend_pid]),
                              time.perf_counter() - started, 0.0)  # fmt: skip
    medians = [statistics.median(values) for values in per_statement]
    return PageResult(url, response.status_code, times, statements, totals, medians, usage["other"])


def _text(response):
    """The answer's words: the JSON, or the HTML without its head, header, navigation and tags."""
    text = re.sub(r"(?s)<(head|header|nav)\b.*?</\1>|<[^>]+>", " ", response.content.decode(errors="replace"))
    return re.sub(r"\s+", " ", text).strip()


def replay_once(statements):
    """The page's statements with its parameters, straight on the driver's cursor: ms of each.

    Rows are fetched (the page needs them too); the replay is a transaction rolled back, in case
    the page wrote something."""
    from django.db import connection, transaction

    with transaction.atomic():
        with connection.connection.cursor() as cursor:
            times = [_run(cursor, statement) for statement in statements]
        transaction.set_rollback(True)
    return times


def _run(cursor, statement):
    started = time.perf_counter()
    if statement.many:
        cursor.executemany(statement.sql, statement.params)
    else:
        cursor.execute(statement.sql, statement.params)
    if cursor.description is not None:
        cursor.fetchall()
    return (time.perf_counter() - started) * 1000


def explain(statement):
    """EXPLAIN ANALYZE of a captured statement with its captured parameters (rolled back)."""
    from django.db import connection, transaction

    with transaction.atomic():
        with connection.connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement.sql, statement.params)
            lines = [row[0] for row in cursor.fetchall()]
        transaction.set_rollback(True)
    return lines


def short_sql(sql, width=200):
    """One line for the eye: no table qualifiers, no alias equal to its column, and a select list of more
    than 4 columns shown as its column count, so that the FROM and WHERE fit."""
    text = re.sub(r"\s+", " ", sql).strip()
    text = re.sub(r'"\w+"\.(?=")', "", text)
    text = re.sub(r'"(\w+)" AS "\1"', r'"\1"', text)
    match = re.match(r"SELECT (DISTINCT )?", text)
    end = _top_level_from(text)
    if match and end is not None:
        n_columns = _top_level_commas(text[match.end() : end]) + 1
        if n_columns > 4:
            text = f"SELECT {match.group(1) or ''}<{n_columns} columns>{text[end:]}"
    return text if len(text) <= width else text[: width - 1] + "…"


def _top_level_from(text):
    depth = 0
    for index, char in enumerate(text):
        depth += (char == "(") - (char == ")")
        if depth == 0 and text.startswith(" FROM ", index):
            return index
    return None


def _top_level_commas(text):
    depth, commas = 0, 0
    for char in text:
        depth += (char == "(") - (char == ")")
        commas += depth == 0 and char == ","
    return commas


# ----------------------------------------------------------------------------------- report


def pg_info():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT version(), pg_backend_pid()")
        version, backend_pid = cursor.fetchone()
        cursor.execute("SELECT name, current_setting(name) FROM unnest(%s::text[]) AS name", [PG_SETTINGS])
        return version.split(" on ")[0], cursor.fetchall(), backend_pid


def data_lines():
    from django.apps import apps
    from django.db.models import Max
    from django.utils import timezone

    from jobs.models import Job

    now = timezone.now()
    newest = Job.objects.aggregate(newest=Max("creation_time"))["newest"]
    window = Job.objects.filter(modification_time__gte=now - timedelta(hours=12)).count()
    counts = [(model._meta.db_table, model.objects.count()) for model in map(apps.get_model, COUNTED_MODELS)]
    age = f"{(now - newest).total_seconds() / 60:.0f} min" if newest else "no jobs"
    return [
        "data: " + ", ".join(f"{table} {n:,}" for table, n in counts),
        f"jobs modified in the last 12 h: {window:,}; newest job created {age} ago"
        + (" (stale: the windows hold fewer jobs; --refresh-times moves the data to now)"
           if newest and now - newest > STALE_AFTER else ""),
    ]  # fmt: skip


def print_results(results, args):
    measured = [r for r in results if isinstance(r, PageResult)]
    width = max([len(r.url) for r in results] + [40])
    print(f"\npages: {args.repeat} calls each after {args.warmup} warm-up(s), in-process (Django test Client; "
          "ms = Django's own time, the Server-Timing header);\nqueries and db ms = the statements of one call and "
          "their time inside it; bare = the same statements and parameters re-run\non the driver's cursor right "
          f"after each call (median of {args.repeat}); others CPU = what the rest of the machine used meanwhile, "
          "PostgreSQL's parallel workers included\n")  # fmt: skip
    print(f"{'page':<{width}} {'status':>6} {'median ms':>9} {'p90 ms':>7} {'min ms':>7} {'queries':>7} "
          f"{'db ms':>7} {'bare ms':>7} {'page/bare':>9} {'others CPU':>10}")  # fmt: skip
    for result in results:
        if isinstance(result, Skipped):
            print(f"{result.url:<{width}} {result.reason}")
            continue
        ratio = f"{result.median / result.bare:.1f}x" if result.bare > 0.05 else "-"
        flag = f"  OVER {TARGET_MS} ms" if result.median > TARGET_MS else ""
        print(f"{result.url:<{width}} {result.status:>6} {result.median:>9.1f} {result.p90:>7.1f} "
              f"{min(result.server_ms):>7.1f} "
              f"{len(result.statements):>7} {result.in_page_db_ms:>7.1f} {result.bare:>7.1f} {ratio:>9} "
              f"{result.others_cpu:>9.0f}%{flag}")  # fmt: skip
    print(f"\nslowest {'statement' if args.top == 1 else f'{args.top} statements'} of each page "
          "(median of the replays; the SQL as the page sent it):")  # fmt: skip
    for result in measured:
        slowest = result.slowest(args.top)
        if not slowest:
            print(f"{result.url}: no SQL")
            continue
        print(f"{result.url}: {result.bare:.1f} ms bare in {len(result.statements)} statements")
        for rank, (statement, ms) in enumerate(slowest):
            print(f"  {ms:7.1f} ms  {short_sql(statement.sql)}")
            if args.explain and rank == 0:
                print("\n".join("      " + line for line in explain(statement)))
    return measured


def print_summary(results, measured):
    skipped = len(results) - len(measured)
    if not measured:
        print(f"\nno page measured ({skipped} not installed or failing)")
        return
    slowest = max(measured, key=lambda r: r.median)
    over = [r for r in measured if r.median > TARGET_MS]
    print(f"\nsummary: {len(measured)} pages measured, {skipped} skipped; slowest {slowest.url} "
          f"{slowest.median:.1f} ms median; {len(over)} over {TARGET_MS} ms"
          + (f" ({', '.join(r.url for r in over)})" if over else ""))  # fmt: skip


# ----------------------------------------------------------------------------------- main


def prepare_database(args, database_name):
    """Migrations, the planner cost docs/deploy.md recommends for SSDs, and the data (filled or reused)."""
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Max
    from django.utils import timezone
    from psycopg2 import sql

    from jobs.models import Job

    call_command("migrate", verbosity=0, interactive=False)
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("ALTER DATABASE {} SET random_page_cost = 1.1").format(sql.Identifier(database_name)))
        cursor.execute("SET random_page_cost = 1.1")
    if not args.reuse:
        started = time.perf_counter()
        steps = pages_fill.fill(args)
        total = time.perf_counter() - started
        print(f"fill: {total:.0f} s (" + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in steps.items()) + ")")
        return
    newest = Job.objects.aggregate(newest=Max("creation_time"))["newest"]
    if newest is None:
        sys.exit("nothing to reuse: the bench database has no jobs (run without --reuse)")
    if args.refresh_times:
        delta = timezone.now() - newest
        started = time.perf_counter()
        pages_fill.shift_times(delta)
        print(f"moved every job time forward by {delta} ({time.perf_counter() - started:.0f} s)")


def recreate_database(database_url):
    """A fill starts from a new database: the project's migrations change while it is being written."""
    import psycopg2
    from psycopg2 import sql

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    admin = psycopg2.connect(
        host=parts.hostname, port=parts.port or 5432, user=parts.username, password=parts.password, dbname="postgres"
    )
    admin.autocommit = True  # DROP/CREATE DATABASE cannot run in a transaction
    try:
        with admin.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        admin.close()
    print(f"created database {name}")


def setup_django(database_url, pg_settings):
    """bench.settings with one connection for the whole run; `--set` settings on every connection it opens."""
    import django

    env.configure(database_url)
    os.environ["DATABASE_CONN_MAX_AGE"] = str(24 * 3600)  # no reconnect between pages (settings, backend pid)
    django.setup()
    from django.db.backends.signals import connection_created

    def apply_settings(sender, connection, **kwargs):
        with connection.cursor() as cursor:
            for pair in pg_settings:
                name, _, value = pair.partition("=")
                cursor.execute("SELECT set_config(%s, %s, false)", [name.strip(), value.strip()])

    connection_created.connect(apply_settings, weak=False)


def main(argv=None):
    args = parse_args(argv)
    database_name = urlsplit(args.database_url).path.lstrip("/")
    if "bench" not in database_name:
        sys.exit(f"refusing to use database {database_name!r}: its name lacks 'bench' (a fill drops it)")
    if args.reuse:
        fill.ensure_database(args.database_url)
    else:
        recreate_database(args.database_url)
    setup_django(args.database_url, args.pg_settings)
    prepare_database(args, database_name)
    version, settings, backend_pid = pg_info()
    print("\n".join(sysinfo.machine_lines(version, settings)))
    print("\n".join(data_lines()))
    print(f"others' load before measuring: {sysinfo.background_busy():.0f}% of one core "
          "(other helpers' tests share this machine: timings are noisy)")  # fmt: skip
    targets = pick_targets()
    urls = [url for url in page_urls(targets) + args.url if not args.only or any(part in url for part in args.only)]
    caller = PageCaller(args.clear_cache)
    results = []
    for url in urls:
        result = measure_page(caller, url, args, backend_pid)
        results.append(result)
        label = f"{result.median:.1f} ms" if isinstance(result, PageResult) else result.reason
        print(f"  {url}: {label}", flush=True)
    measured = print_results(results, args)
    print_summary(results, measured)


if __name__ == "__main__":
    main()

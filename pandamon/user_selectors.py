"""Reads about users and usage: who ran what, where, with how much CPU.

Jobs name their user by prod_user_name (what PanDA records: the submitter's nickname), which
need not be an account of this portal (certificate-only users), so pages key on it. Every job
query is bounded by a time window on modification_time, like the jobs list whose links they give.
"""

from django.contrib.auth import get_user_model
from django.db.models import Count, Max, Q, Sum
from django.db.models.functions import TruncDate

from datasets.models import Dataset
from jobs import errorcodes
from jobs.choices import FileType, JobStatus
from jobs.error_selectors import failures_by_code
from jobs.models import Job, JobFile
from quotas.choices import AccountKind
from quotas.selectors import daily_history

from .site_selectors import ALL_STATES, FINAL_STATE_ORDER, count_in

RECENT_FAILURES = 20
TASKS_SHOWN = 50
DATASETS_SHOWN = 50
INACTIVE_SHOWN = 500
DAILY_DAYS = 30


def _hours(seconds):
    return round((seconds or 0) / 3600, 1)


# ---------------------------------------------------------------- the user list


def user_activity(*, window, name_q=None):
    """One row per prod_user_name with jobs in the window: jobs by state, last change, CPU hours, sites.

    Two queries: GROUP BY (user, state) with the CPU time and the latest change, and the distinct
    (user, site) pairs."""
    jobs = Job.objects.filter(window.q()).exclude(prod_user_name="")
    if name_q is not None:
        jobs = jobs.filter(name_q)
    by_state = (
        jobs.values_list("prod_user_name", "status")
        .annotate(n=Count("*"), latest=Max("modification_time"), cpu=Sum("cpu_consumption_time"))
        .order_by()
    )
    users = {}
    for name, status, n, latest, cpu in by_state:
        row = users.setdefault(name, {"user": name, "jobs": dict.fromkeys(ALL_STATES, 0), "latest": latest,
                                      "cpu_hours": 0.0, "sites": 0})  # fmt: skip
        row["jobs"][status] = n
        row["latest"] = max(row["latest"], latest)
        if status == JobStatus.FINISHED:  # CPU hours are those of finished jobs: the useful work
            row["cpu_hours"] = _hours(cpu)
    # The distinct (user, site) pairs, counted here: a hashed DISTINCT, where COUNT(DISTINCT) per user
    # sorts every job of the window. A user works at a few sites, so there are few pairs.
    pairs = jobs.exclude(computing_site=None).values_list("prod_user_name", "computing_site_id").distinct()
    for name, _ in pairs.order_by():
        if name in users:  # a job committed between the two queries may add a user: counted next time
            users[name]["sites"] += 1
    for row in users.values():
        _add_totals(row)
    return list(users.values())


def _add_totals(row):
    jobs = row["jobs"]
    row["total"] = sum(jobs.values())
    row["active"] = row["total"] - sum(jobs[state] for state in FINAL_STATE_ORDER)
    ended = jobs["finished"] + jobs["failed"]
    row["failure_pct"] = round(100 * jobs["failed"] / ended, 1) if ended else None
    return row


def inactive_accounts(*, active_names):
    """Accounts of the portal with no job in the window (a queryset, names in order)."""
    return get_user_model().objects.exclude(username__in=active_names).order_by("username")


# ---------------------------------------------------------------- one user


def account(username):
    return get_user_model().objects.filter(username=username).prefetch_related("groups").first()


def has_jobs(username):
    return Job.objects.filter(prod_user_name=username).exists()


def user_jobs(*, username, window):
    return Job.objects.filter(window.q(), prod_user_name=username)


def user_job_summary(*, username, window):
    """{jobs: {state: n}, total, active, failure_pct, cpu_hours, latest} of the user's jobs in the window."""
    rows = (
        user_jobs(username=username, window=window)
        .values_list("status")
        .annotate(n=Count("*"), cpu=Sum("cpu_consumption_time"), latest=Max("modification_time"))
        .order_by()
    )
    summary = {"jobs": dict.fromkeys(ALL_STATES, 0), "cpu_hours": 0.0, "latest": None}
    for status, n, cpu, latest in rows:
        summary["jobs"][status] = n
        summary["latest"] = max(filter(None, (summary["latest"], latest)))
        if status == JobStatus.FINISHED:
            summary["cpu_hours"] = _hours(cpu)
    return _add_totals(summary)


def user_recent_failures(*, username, window, limit=RECENT_FAILURES):
    """The user's latest failed jobs of the window, each with its first error."""
    rows = (
        user_jobs(username=username, window=window)
        .filter(status=JobStatus.FAILED)
        .order_by("-modification_time", "-pandaid")
        .values("pandaid", "job_name", "task_id", "computing_site__name", "modification_time", *errorcodes.ROW_COLUMNS)[
            :limit
        ]
    )
    return [_with_first_error(row) for row in rows]


def _with_first_error(row):
    """The row with its error columns folded into `error` (the first component that reported one)."""
    row["error"] = errorcodes.first_error(row)
    for column in errorcodes.ROW_COLUMNS:
        del row[column]
    return row


def user_failures_by_error(*, username, window):
    return failures_by_code(user_jobs(username=username, window=window).filter(status=JobStatus.FAILED))


def user_sites(*, username, window):
    """Per site the user's jobs ran at in the window: jobs, active, finished, failed; busiest first."""
    finals = {state.value: count_in(state) for state in FINAL_STATE_ORDER}
    rows = (
        user_jobs(username=username, window=window)
        .exclude(computing_site=None)
        .values("computing_site__name")
        .annotate(total=Count("*"), **finals)
        .order_by("-total", "computing_site__name")
    )
    return [
        {"site": row["computing_site__name"], "total": row["total"],
         "active": row["total"] - sum(row[state.value] for state in FINAL_STATE_ORDER),
         **{state.value: row[state.value] for state in FINAL_STATE_ORDER}}
        for row in rows
    ]  # fmt: skip


def user_tasks(*, username, window, limit=TASKS_SHOWN):
    """(number of distinct task ids, the `limit` latest tasks with their jobs by outcome).

    There is no task model yet: a task is the task_id its jobs carry."""
    jobs = user_jobs(username=username, window=window).exclude(task_id=None)
    rows = (
        jobs.values("task_id")
        .annotate(total=Count("*"), finished=count_in(JobStatus.FINISHED),
                  failed=count_in(JobStatus.FAILED), latest=Max("modification_time"))
        .order_by("-latest", "-task_id")[:limit]
    )  # fmt: skip
    return jobs.values("task_id").distinct().count(), list(rows)


def user_datasets(*, user, limit=DATASETS_SHOWN):
    """(number of live datasets the account owns, the `limit` newest of them)."""
    if user is None:
        return 0, []
    owned = Dataset.objects.filter(owner=user, erased_at__isnull=True)
    rows = owned.order_by("-created_at", "-id").values("name", "kind", "state", "n_files", "bytes", "created_at")
    return owned.count(), list(rows[:limit])


# ---------------------------------------------------------------- daily usage


def daily_usage(*, start):
    """({day: {finished, failed, cancelled, closed, cpu_hours, users, sites}}, {users, sites} over the period)
    of the jobs that reached a final state from `start` on, per calendar day (UTC, TruncDate in SQL).

    Two hashed GROUP BYs instead of COUNT(DISTINCT) (which sorts every job of the period): (day, user)
    with the counts and the CPU time, read from the table, and the distinct (day, site) pairs, which the
    (status, site, modification_time) index answers alone. Both return few rows: days x users, days x sites."""
    ended = Job.objects.filter(status__in=FINAL_STATE_ORDER, modification_time__gte=start)
    ended = ended.annotate(day=TruncDate("modification_time"))
    finals = {state.value: count_in(state) for state in FINAL_STATE_ORDER}
    per_user = ended.values("day", "prod_user_name").annotate(
        **finals, cpu=Sum("cpu_consumption_time", filter=Q(status=JobStatus.FINISHED))
    )
    days, users, sites = {}, set(), set()
    for row in per_user.order_by():
        day = days.setdefault(row["day"], {**dict.fromkeys(finals, 0), "cpu": 0, "users": 0, "sites": 0})
        for state in finals:
            day[state] += row[state]
        day["cpu"] += row["cpu"] or 0
        if row["prod_user_name"]:
            day["users"] += 1
            users.add(row["prod_user_name"])
    pairs = ended.exclude(computing_site=None).values_list("day", "computing_site_id").distinct()
    for day, site_id in pairs.order_by():
        if day in days:  # as above, a job committed between the two queries waits for the next view
            days[day]["sites"] += 1
            sites.add(site_id)
    for day in days.values():
        day["cpu_hours"] = _hours(day.pop("cpu"))
    return days, {"users": len(users), "sites": len(sites)}


def user_input_datasets(*, username, window, limit=DATASETS_SHOWN):
    """The datasets the user's jobs of the window read, most read first: [{name, jobs, files}]."""
    rows = (
        JobFile.objects.filter(job__in=user_jobs(username=username, window=window).values("pandaid"),
                               type=FileType.INPUT)
        .exclude(dataset="")
        .values("dataset")
        .annotate(jobs=Count("job_id", distinct=True), files=Count("*"))
        .order_by("-jobs", "dataset")[:limit]
    )  # fmt: skip
    return [{"name": row["dataset"], "jobs": row["jobs"], "files": row["files"]} for row in rows]


def user_daily_statistics(*, username, days=DAILY_DAYS):
    """The user's kept daily statistics (quota accounting): jobs submitted and ended per day, success rate, CPU."""
    rows = daily_history(AccountKind.USER, username, days=days).values(
        "day", "submitted", "finished", "failed", "cancelled", "cpu_seconds"
    )
    result = []
    for row in rows:
        ended = row["finished"] + row["failed"]
        result.append({**row, "success_pct": round(100 * row["finished"] / ended) if ended else None,
                       "cpu_hours": _hours(row["cpu_seconds"])})  # fmt: skip
    return result

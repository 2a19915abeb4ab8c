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

    One pass over the window: GROUP BY (user, state, site) with the CPU time and the latest change,
    folded here into one row per user (a user's sites are the distinct sites of its groups). A user
    works at a few sites, so there are few groups; a second query for the (user, site) pairs would
    read the whole window again."""
    jobs = Job.objects.filter(window.q()).exclude(prod_user_name="")
    if name_q is not None:
        jobs = jobs.filter(name_q)
    groups = (
        jobs.values_list("prod_user_name", "status", "computing_site_id")
        .annotate(n=Count("*"), latest=Max("modification_time"), cpu=Sum("cpu_consumption_time"))
        .order_by()
    )
    users, sites = {}, {}
    for name, status, site_id, n, latest, cpu in groups:
        row = users.get(name)
        if row is None:
            row = users[name] = {"user": name, "jobs": dict.fromkeys(ALL_STATES, 0), "latest": latest,
                                 "cpu_hours": 0.0, "sites": 0}  # fmt: skip
            sites[name] = set()
        row["jobs"][status] = row["jobs"].get(status, 0) + n
        row["latest"] = max(row["latest"], latest)
        if status == JobStatus.FINISHED:  # CPU hours are those of finished jobs: the useful work
            row["cpu_hours"] += cpu or 0  # seconds until the end of the loop
        if site_id is not None:
            sites[name].add(site_id)
    for name, row in users.items():
        row["cpu_hours"] = _hours(row["cpu_hours"])
        row["sites"] = len(sites[name])
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

    One pass over the period: a hashed GROUP BY (day, user, site) with the counts by final state and the
    CPU time, folded here into days (COUNT(DISTINCT) would sort every job of the period, and a second
    query for the distinct (day, site) pairs would read the period again). It returns few rows: a user
    works at a few sites a day."""
    ended = Job.objects.filter(status__in=FINAL_STATE_ORDER, modification_time__gte=start)
    finals = {state.value: count_in(state) for state in FINAL_STATE_ORDER}
    groups = (
        ended.annotate(day=TruncDate("modification_time"))
        .values("day", "prod_user_name", "computing_site_id")
        .annotate(**finals, cpu=Sum("cpu_consumption_time", filter=Q(status=JobStatus.FINISHED)))
        .order_by()
    )
    days, day_users, day_sites = {}, {}, {}
    for row in groups:
        day = days.get(row["day"])
        if day is None:
            day = days[row["day"]] = {**dict.fromkeys(finals, 0), "cpu": 0}
            day_users[row["day"]], day_sites[row["day"]] = set(), set()
        for state in finals:
            day[state] += row[state]
        day["cpu"] += row["cpu"] or 0
        if row["prod_user_name"]:
            day_users[row["day"]].add(row["prod_user_name"])
        if row["computing_site_id"] is not None:
            day_sites[row["day"]].add(row["computing_site_id"])
    for key, day in days.items():
        day["cpu_hours"] = _hours(day.pop("cpu"))
        day["users"], day["sites"] = len(day_users[key]), len(day_sites[key])
    users = set().union(*day_users.values())
    sites = set().union(*day_sites.values())
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

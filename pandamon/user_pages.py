"""User pages (the user list and a user's page) and the daily usage summary, each with its JSON twin.

They live in pandamon/ because they combine jobs, data and accounts (pandamon/user_selectors.py)."""

from datetime import datetime, time, timedelta
from urllib.parse import urlencode

from django import forms
from django.urls import reverse
from django.utils import timezone

from pandamon import roles
from pandamon import user_selectors as selectors
from pandamon.errors import InvalidInput, NotFound, ServiceError
from pandamon.grammar import WINDOW_PARAMS, TextFilter, TextPatternField
from quotas.selectors import quota_report

from .pages import error_page, render_page
from .site_pages import (
    WINDOW_CHOICES,
    job_window,
    kept_params,
    parse_sortby,
    refuse_unknown,
    sort_headers,
    sort_rows,
    window_params,
)
from .site_selectors import ACTIVE_STATES, FINAL_STATE_ORDER

USER_WINDOW_HOURS = 7 * 24
USER_HEADERS = (("user", "User"), ("total", "Jobs"), ("active", "Active"), ("finished", "Finished"),
                ("failed", "Failed"), ("cancelled", "Cancelled"), ("failure_pct", "Fail %"),
                ("cpu_hours", "CPU hours"), ("sites", "Sites"), ("latest", "Latest job"))  # fmt: skip
USER_SORT_KEYS = tuple(key for key, _ in USER_HEADERS)
USAGE_DEFAULT_DAYS = 7
USAGE_MAX_DAYS = 90


# ---------------------------------------------------------------- the user list


def user_list(request):
    params = request.GET
    try:
        refuse_unknown(params, (*WINDOW_PARAMS, "sortby", "name", "inactive"))
        window = job_window(params, default_hours=USER_WINDOW_HOURS)
        sortby = parse_sortby(params.get("sortby") or "-latest", USER_SORT_KEYS)
        name_q = _name_q(params.get("name"))
        show_inactive = _flag(params, "inactive")
    except ServiceError as error:
        return error_page(request, error)
    users = selectors.user_activity(window=window, name_q=name_q)
    sort_rows(users, sortby, name="user")
    inactive = selectors.inactive_accounts(active_names=[row["user"] for row in users])
    inactive_count = inactive.count()
    inactive_rows = (
        list(inactive.values("username", "date_joined", "last_login")[: selectors.INACTIVE_SHOWN])
        if show_inactive
        else []
    )
    data = {
        "meta": {"window": window.as_dict(), "sortby": sortby, "total": len(users), "inactive_accounts": inactive_count},
        "rows": users,
        "inactive": inactive_rows,
    }  # fmt: skip
    context = {
        "data": data, "users": users, "window": window, "sortby": sortby, "show_inactive": show_inactive,
        "headers": sort_headers(USER_HEADERS, sortby), "keep": kept_params(params), "hours_options": WINDOW_CHOICES,
        "window_qs": urlencode(window_params(params, window)), "inactive": inactive_rows,
        "inactive_count": inactive_count, "name": params.get("name", ""),
        "keep_for_name": {name: value for name, value in params.items() if name not in ("name", "json", "inactive")},
    }  # fmt: skip
    return render_page(request, "users/user_list.html", context, json_data=data)


def _name_q(raw):
    """name= in the filter grammar (alice|bob, ali*, !robot*) as a Q on prod_user_name."""
    if not raw:
        return None
    try:
        pattern = TextPatternField(required=False).clean(raw)
    except forms.ValidationError as error:
        raise InvalidInput("invalid filter: name: " + " ".join(error.messages)) from None
    return pattern.to_q("prod_user_name", TextFilter.term_q)


def _flag(params, name):
    raw = params.get(name)
    if raw in (None, "", "0", "1"):
        return raw == "1"
    raise InvalidInput(f"{name} must be 1 or 0, got {raw[:20]!r}")


# ---------------------------------------------------------------- one user


def user_detail(request, username):
    params = request.GET
    try:
        refuse_unknown(params, WINDOW_PARAMS)
        window = job_window(params, default_hours=USER_WINDOW_HOURS)
        user = selectors.account(username)
        if user is None and not selectors.has_jobs(username):
            raise NotFound(f"no user named {username!r}: no account and no job carries this name")
    except ServiceError as error:
        return error_page(request, error)
    summary = selectors.user_job_summary(username=username, window=window)
    n_tasks, tasks = selectors.user_tasks(username=username, window=window)
    n_datasets, datasets = selectors.user_datasets(user=user)
    for row in datasets:
        row["url"] = reverse("dataset-page", args=[row["name"]])
    data = {
        "user": username,
        "account": _account_dict(user),
        "window": window.as_dict(),
        "summary": summary,
        "failures_by_error": selectors.user_failures_by_error(username=username, window=window),
        "recent_failures": selectors.user_recent_failures(username=username, window=window),
        "sites": selectors.user_sites(username=username, window=window),
        "tasks": {"total": n_tasks, "rows": tasks},
        "datasets": {"total": n_datasets, "rows": datasets},
        "datasets_used": selectors.user_input_datasets(username=username, window=window),
        "daily": selectors.user_daily_statistics(username=username),
        "quota": _quota(request.user, user),
    }
    context = {
        "data": data, "username": username, "account": user, "window": window, "summary": summary,
        "window_qs": urlencode(window_params(params, window)), "hours_options": WINDOW_CHOICES, "keep": {},
        "active_states": [(state, summary["jobs"][state]) for state in ACTIVE_STATES if summary["jobs"][state]],
        "final_states": [(state, summary["jobs"][state]) for state in FINAL_STATE_ORDER],
    }  # fmt: skip
    return render_page(request, "users/user_detail.html", context, json_data=data)


def _quota(viewer, user):
    """The user's quota lines (their own account only), for the user themself, shifters and admins."""
    if user is None:
        return None
    allowed = viewer.is_authenticated and (
        viewer.pk == user.pk or roles.is_admin(viewer) or roles.has_role(viewer, roles.SHIFTER)
    )
    if not allowed:
        return {"visible": False}
    [own, *_groups] = quota_report(user, days=1)
    return {"visible": True, "quotas": own["quotas"]}


def _account_dict(user):
    if user is None:
        return None
    return {"username": user.username, "date_joined": user.date_joined, "last_login": user.last_login,
            "is_active": user.is_active, "roles": sorted(group.name for group in user.groups.all())}  # fmt: skip


# ---------------------------------------------------------------- daily usage


def usage(request):
    params = request.GET
    try:
        refuse_unknown(params, ("days",))
        days = _days(params.get("days"))
    except ServiceError as error:
        return error_page(request, error)
    today = timezone.now().date()
    first = today - timedelta(days=days - 1)
    start = timezone.make_aware(datetime.combine(first, time.min))
    by_day, distinct = selectors.daily_usage(start=start)
    rows = [_usage_row(first + timedelta(days=offset), by_day) for offset in range(days)]
    totals = {key: sum(row[key] for row in rows) for key in ("finished", "failed", "cancelled", "closed")}
    totals["cpu_hours"] = round(sum(row["cpu_hours"] for row in rows), 1)
    totals.update(distinct)
    data = {"meta": {"days": days, "from": start, "to": None, "timezone": "UTC"}, "totals": totals, "rows": rows}
    peak = max((row["ended"] for row in rows), default=0) or 1
    # Newest first, each with the window of its day for the links. Explicit times, not dates: a whole day is
    # [D 00:00, D+1 00:00) whatever a list makes of a bare date_to.
    day_rows = [(row, urlencode({"date_from": f"{row['day']}T00:00", "date_to": f"{row['day'] + timedelta(days=1)}T00:00"}))
                for row in reversed(rows)]  # fmt: skip
    context = {"data": data, "day_rows": day_rows, "totals": totals, "days": days, "peak": peak,
               "day_options": (7, 14, 30, 60, 90)}  # fmt: skip
    return render_page(request, "summaries/usage.html", context, json_data=data)


def _days(raw):
    if raw in (None, ""):
        return USAGE_DEFAULT_DAYS
    try:
        days = int(raw)
    except ValueError:
        raise InvalidInput(f"days must be a whole number of days, got {raw[:40]!r}") from None
    if not 1 <= days <= USAGE_MAX_DAYS:
        raise InvalidInput(f"days must be between 1 and {USAGE_MAX_DAYS}")
    return days


def _usage_row(day, by_day):
    found = by_day.get(day, {})
    row = {"day": day, **{state.value: found.get(state.value, 0) for state in FINAL_STATE_ORDER},
           "cpu_hours": found.get("cpu_hours", 0.0), "users": found.get("users", 0), "sites": found.get("sites", 0)}  # fmt: skip
    row["ended"] = sum(row[state.value] for state in FINAL_STATE_ORDER)
    ended = row["finished"] + row["failed"]
    row["failure_pct"] = round(100 * row["failed"] / ended, 1) if ended else None
    return row

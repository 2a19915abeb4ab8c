"""The quota page: usage against limits for you and your physics groups, with 30 days of history."""

import json

import plotly.graph_objects as go
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required

from pandamon import roles
from pandamon.errors import NotFound, PermissionDenied, ServiceError
from pandamon.pages import error_page, render_page

from .selectors import quota_report

HISTORY_DAYS = 30


@login_required
def quota_page(request):
    try:
        user = _whose(request)
    except ServiceError as error:
        return error_page(request, error)
    accounts = quota_report(user, days=HISTORY_DAYS)
    data = {"user": user.username, "accounts": accounts}
    for account in accounts:
        account["figure"] = history_figure(account)
    return render_page(request, "quotas/quota_page.html", {"data": data, "accounts": accounts},
                       json_data={"user": user.username, "accounts": [_without_figure(a) for a in accounts]})  # fmt: skip


def _whose(request):
    """Your own quotas; admins and shifters may look at anyone's with ?user=."""
    name = request.GET.get("user")
    if not name or name == request.user.username:
        return request.user
    if not (roles.is_admin(request.user) or roles.has_role(request.user, roles.SHIFTER)):
        raise PermissionDenied(f"only admins and shifters may look at another user's quotas ({name}'s)")
    user = get_user_model().objects.filter(username=name).first()
    if user is None:
        raise NotFound(f"no user named {name!r}")
    return user


def _without_figure(account):
    return {key: value for key, value in account.items() if key != "figure"}


def history_figure(account):
    """Jobs ended per day (stacked by outcome) and CPU hours per day, as plotly JSON."""
    days = [row["day"].isoformat() for row in account["history"]]
    figure = go.Figure()
    for column, colour in (("finished", "#3a9d5d"), ("failed", "#c0392b"), ("cancelled", "#999999")):
        figure.add_bar(x=days, y=[row[column] for row in account["history"]], name=column, marker_color=colour)
    cpu_hours = [round(row["cpu_seconds"] / 3600, 1) for row in account["history"]]
    figure.add_scatter(x=days, y=cpu_hours, name="CPU hours", yaxis="y2", mode="lines+markers", line_color="#1f5fa8")
    figure.update_layout(
        title={"text": f"{account['account']['kind']} {account['account']['name']}: last {HISTORY_DAYS} days"},
        barmode="stack", height=300, margin={"l": 50, "r": 60, "t": 40, "b": 40},
        yaxis={"title": {"text": "jobs ended"}}, yaxis2={"title": {"text": "CPU hours"}, "overlaying": "y", "side": "right"},
        legend={"orientation": "h", "y": -0.2},
    )  # fmt: skip
    return json.loads(figure.to_json())

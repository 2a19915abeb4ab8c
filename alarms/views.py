"""The alarm panel and the notification preferences page."""

from urllib.parse import urlencode

from django import forms
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from pandamon import roles
from pandamon.errors import PermissionDenied, ServiceError
from pandamon.pages import error_page, list_page, render_page

from .categories import categories, category_help
from .choices import CHANNEL_ARROW, AlarmState, Severity, SubjectKind
from .filters import AlarmFilterSet
from .models import Alarm, NotificationPreference, SentNotification
from .services import alarms

ALARM_COLUMNS = ("id", "severity", "state", "category", "subject_kind", "subject", "message", "source", "count",
                 "first_seen", "last_seen", "acknowledged_by__username", "acknowledged_at", "resolved_by",
                 "resolved_at")  # fmt: skip


def alarm_panel(request):
    may_handle = roles.is_admin(request.user) or roles.has_role(request.user, roles.SHIFTER)
    return list_page(
        request, "alarms/alarm_panel.html", filterset_class=AlarmFilterSet, queryset=Alarm.objects.all(),
        columns=ALARM_COLUMNS, decorate=_with_subject_links,
        context={"noun": "alarm", "may_handle": may_handle, "states": AlarmState, "severities": Severity,
                 "categories": categories()},
    )  # fmt: skip


def _with_subject_links(rows):
    for row in rows:
        row["subject_url"] = _subject_url(row["subject_kind"], row["subject"])
        row["category_help"] = category_help(row["category"])
    return rows


def _subject_url(kind, subject):
    if kind == SubjectKind.CHANNEL:  # the channel's hours, totals, last error and throughput plot
        source, _, destination = subject.partition(CHANNEL_ARROW)
        return "/transfers/channels/?" + urlencode({"source": source, "destination": destination})
    return {"site": f"/sites/{subject}/", "job": f"/jobs/{subject}/", "dataset": f"/datasets/{subject}/"}.get(kind)


@require_POST
def alarm_action(request, alarm_id, action):
    """Acknowledge or resolve (shifters and admins): the same service as the API."""
    if not request.user.is_authenticated:
        return error_page(request, PermissionDenied("log in to handle alarms"))
    handler = {"acknowledge": alarms.acknowledge, "resolve": alarms.resolve}[action]
    try:
        handler(user=request.user, alarm_id=alarm_id)
    except ServiceError as error:
        return error_page(request, error)
    return redirect(request.POST.get("next") or "alarms-page")


RECENT_MAILS = 20


class PreferenceForm(forms.ModelForm):
    class Meta:
        model = NotificationPreference
        fields = ["email", "on_start", "on_finish", "on_failure"]


@login_required
def notification_preferences(request):
    preference, _ = NotificationPreference.objects.get_or_create(user=request.user)
    form = PreferenceForm(request.POST or None, instance=preference)
    if request.method == "POST" and form.is_valid():
        form.save()
        return redirect("notifications-page")
    status = 400 if request.method == "POST" else 200
    sent = list(SentNotification.objects.filter(user=request.user).values("sent_at", "subject", "events", "address")
                [:RECENT_MAILS])  # fmt: skip
    data = {
        "preference": {name: getattr(preference, name) for name in PreferenceForm.Meta.fields},
        "address": preference.address,
        "errors": form.errors,
        "recent_mails": sent,
    }
    return render_page(request, "alarms/notifications.html", {"form": form, "data": data}, json_data=data,
                       status=status)  # fmt: skip

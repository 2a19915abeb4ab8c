"""The notification preferences page: which job events a user is mailed about."""

from django import forms
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect

from pandamon.pages import render_page

from .models import NotificationPreference, SentNotification

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

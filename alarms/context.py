"""The alarm status on every portal page: live alarms by severity, in the header."""

from django.conf import settings
from django.db.models import Count

from pandamon.cache import TtlCache

from .choices import AlarmState
from .models import Alarm

# Every page shows it, so it is counted at most once per interval and web process.
_status = TtlCache(lambda: settings.PANDA_ALARMS["STATUS_CACHE_SECONDS"])


def open_alarm_counts():
    rows = Alarm.objects.filter(state=AlarmState.OPEN).values_list("severity").annotate(n=Count("*")).order_by()
    return dict(rows)


def alarm_status(request):
    return {"alarm_status": _status.get("open", open_alarm_counts)}

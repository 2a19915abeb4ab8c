"""The one FilterSet for alarms, shared by the alarm panel and the API."""

from pandamon.grammar import ChoiceFilter, GrammarFilterSet, IntFilter, TextFilter

from .choices import AlarmState, Severity, SubjectKind
from .models import Alarm


class AlarmFilterSet(GrammarFilterSet):
    id = IntFilter()
    state = ChoiceFilter(choices=AlarmState.choices, help_text="open, acknowledged, resolved; !resolved = live.")
    severity = ChoiceFilter(choices=Severity.choices)
    category = TextFilter()
    subjectkind = ChoiceFilter(field_name="subject_kind", choices=SubjectKind.choices)
    subject = TextFilter(help_text="Site name, PandaID, task id, dataset or service.")
    source = TextFilter()

    window_field = "last_seen"
    deep_params = ("id", "state")
    default_hours = 24 * 7
    facet_fields = ("state", "severity", "category", "subjectkind", "subject")
    sort_keys = {"lastseen": ("last_seen", "id"), "firstseen": ("first_seen", "id"), "count": ("count", "id")}
    default_sort = "-lastseen"

    class Meta:
        model = Alarm
        fields = []

"""The operators' generic plot: a model, one of its time fields, a group-by field and the model's own
filters, all from whitelists (no free SQL), counted per time bin in the database.

    /plots/custom/?model=jobs&time=end_time&by=computingsite&jobstatus=failed&days=3
"""

from dataclasses import dataclass

from django.db.models import Count
from django.utils import timezone

from alarms.filters import AlarmFilterSet
from alarms.models import Alarm
from datasets.filters import DatasetFilterSet
from datasets.models import Dataset
from jobs.filters import JobFilterSet
from jobs.models import Job

from . import plots
from .errors import InvalidInput
from .grammar import NOT_SPECIFIED, WINDOW_PARAMS, window_of
from .listing import valid_filterset
from .pages import error_page, render_page

PLOT_PARAMS = ("model", "time", "by", "json")
DEFAULT_HOURS = 24
SERIES_SHOWN = 10


@dataclass(frozen=True)
class Plottable:
    label: str
    queryset: object
    filterset_class: type
    times: tuple  # datetime columns the x axis may use
    groups: dict  # group-by parameter -> ORM lookup


PLOTTABLE = {
    "jobs": Plottable("jobs", Job.objects.all(), JobFilterSet,
                      ("modification_time", "creation_time", "start_time", "end_time", "state_change_time"),
                      {"jobstatus": "status", "computingsite": "computing_site__name", "cloud": "cloud",
                       "prodsourcelabel": "prod_source_label", "produsername": "prod_user_name",
                       "processingtype": "processing_type", "taskid": "task_id", "corecount": "core_count"}),
    "alarms": Plottable("alarms", Alarm.objects.all(), AlarmFilterSet, ("first_seen", "last_seen"),
                        {"severity": "severity", "category": "category", "state": "state",
                         "subjectkind": "subject_kind"}),
    "datasets": Plottable("datasets", Dataset.objects.filter(erased_at__isnull=True), DatasetFilterSet,
                          ("created_at", "modified_at"),
                          {"category": "category", "kind": "kind", "state": "state", "format": "format",
                           "stage": "stage"}),
}  # fmt: skip


def custom_plot(request):
    try:
        plottable, time_field, group = _choice(request.GET)
        window = _window(request.GET, time_field)
        selection = _selection(plottable, request.GET).filter(window.q())
    except InvalidInput as error:
        return error_page(request, error)
    bins = plots.TimeBins.for_span(window.start, window.end or timezone.now())
    lookup = plottable.groups[group] if group else None
    rows = selection.values(*([lookup] if lookup else []), **bins.expressions(time_field)).annotate(n=Count("*"))
    series = plots.series_over_bins(list(rows.order_by()), bins, top=SERIES_SHOWN,
                                    name_of=lambda row: _name(row[lookup]) if lookup else plottable.label)  # fmt: skip
    title = f"{plottable.label} per {bins.label} by {time_field}" + (f", by {group}" if group else "")
    figure = plots.stacked_time_histogram(bins.edges(), series, width=bins.width, title=title,
                                          y_title=plottable.label)  # fmt: skip
    data = {
        "meta": {"model": plottable.label, "time": time_field, "by": group, "window": window.as_dict(),
                 "bins": bins.as_dict(), "filters": _filters(request.GET)},
        "bins": bins.edges(),
        "series": [{"name": name, "counts": counts} for name, counts in series.items()],
    }  # fmt: skip
    context = {"data": data, "figure": figure, "plottable": PLOTTABLE, "chosen": plottable, "time": time_field,
               "group": group}  # fmt: skip
    return render_page(request, "plots/custom_plot.html", context, json_data=data)


def _choice(params):
    name = params.get("model", "jobs")
    if name not in PLOTTABLE:
        raise InvalidInput(f"model must be one of {', '.join(PLOTTABLE)}, got {name[:40]!r}")
    plottable = PLOTTABLE[name]
    time_field = params.get("time", plottable.times[0])
    if time_field not in plottable.times:
        raise InvalidInput(f"time must be one of {', '.join(plottable.times)} for {name}, got {time_field[:40]!r}")
    group = params.get("by") or None
    if group and group not in plottable.groups:
        raise InvalidInput(f"by must be one of {', '.join(plottable.groups)} for {name}, got {group[:40]!r}")
    return plottable, time_field, group


def _window(params, time_field):
    window = window_of(params, field=time_field, default_hours=DEFAULT_HOURS)
    if window.start is None:  # only date_to given: a bounded plot still needs a start
        window = window_of({"hours": str(DEFAULT_HOURS), "date_to": params.get("date_to")}, field=time_field,
                           default_hours=DEFAULT_HOURS)  # fmt: skip
    return window


def _selection(plottable, params):
    """The model's own FilterSet (its grammar and whitelist of fields), without its own time window:
    the window applies to the chosen time field instead."""
    filterset_class = type(plottable.filterset_class.__name__, (plottable.filterset_class,),
                           {"window_field": None, "extra_params": (*PLOT_PARAMS, *WINDOW_PARAMS)})  # fmt: skip
    return valid_filterset(filterset_class, params, plottable.queryset).qs.order_by()


def _filters(params):
    return {name: value for name, value in params.items() if name not in (*PLOT_PARAMS, *WINDOW_PARAMS)}


def _name(value):
    return NOT_SPECIFIED if value in (None, "") else value

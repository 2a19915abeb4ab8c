"""The plots page: how long jobs wait and run, and how they move between states, each with its data as JSON."""

from urllib.parse import urlencode

from jobs import error_selectors
from jobs.choices import JobStatus
from jobs.filters import JOB_TYPES

from . import plots
from .errors import ServiceError
from .pages import error_page, render_page

NOT_CARRIED = ("json", "after", "limit", "sortby", "cursor")
MEASURES = {
    "wait": "Wait (creation → start)",
    "duration": "Duration (start → end)",
}


def job_plots(request):
    try:
        data = error_selectors.plot_data(request.GET)
    except ServiceError as error:
        return error_page(request, error)
    selection, timed = data["selection"], data["timing_selection"]
    figures = {"over_time": _over_time_figure(data["jobs_over_time"], selection.bins)}
    for measure, title in MEASURES.items():
        distribution = data[measure]
        for split in ("by_site", "by_type"):
            figures[f"{measure}_{split}"] = plots.stacked_category_histogram(
                distribution["buckets"], distribution[split], x_title=title, y_title="jobs",
                title=f"{title}, {split.replace('_', ' ')}",
            )  # fmt: skip
    json_data = _json_twin(request, selection, timed, data)
    carried = {name: value for name, value in request.GET.items() if name not in NOT_CARRIED}
    context = {"data": json_data, "figures": figures, "window": selection.filterset.window,
               "filters": json_data["meta"]["filters"], "timing_status": timed.params.get("jobstatus"),
               "timing_defaulted": bool(timed.defaulted), "querystring": urlencode(carried),
               "states": JobStatus, "job_types": JOB_TYPES, "sites_shown": error_selectors.TIMING_SITES_SHOWN,
               "distributions": [(m, MEASURES[m], data[m]) for m in MEASURES]}  # fmt: skip
    return render_page(request, "plots/job_plots.html", context, json_data=json_data)


def _over_time_figure(over_time, bins):
    return plots.time_lines(over_time["bins"], over_time["series"], width=bins.width, y_title="jobs",
                            title=f"Jobs created, started and ended, per {bins.label}")  # fmt: skip


def _json_twin(request, selection, timed, data):
    filterset = selection.filterset
    filters = {name: value for name, value in request.GET.items() if name in filterset.filters}
    over_time = data["jobs_over_time"]
    return {
        "meta": {"filters": filters, "window": filterset.window.as_dict() if filterset.window else None,
                 "timing_jobstatus": timed.params.get("jobstatus"), "bins": over_time["bin"]},
        "wait": _distribution(data["wait"]),
        "duration": _distribution(data["duration"]),
        "jobs_over_time": {"bins": over_time["bins"], "totals": over_time["totals"],
                           "series": [{"name": name, "counts": counts} for name, counts in over_time["series"].items()]},
    }  # fmt: skip


def _distribution(distribution):
    return {
        "from": distribution["from"], "to": distribution["to"], "total": distribution["total"],
        "buckets": distribution["buckets"], "edges_seconds": distribution["edges_seconds"],
        "by_site": [{"site": name, "counts": counts} for name, counts in distribution["by_site"].items()],
        "by_type": [{"type": name, "counts": counts} for name, counts in distribution["by_type"].items()],
    }  # fmt: skip

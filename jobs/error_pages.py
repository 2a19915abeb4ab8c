"""The errors summary page: failures of a window grouped by error, site, user, task and signature."""

from urllib.parse import urlencode

from django.urls import reverse

from pandamon import plots
from pandamon.errors import ServiceError
from pandamon.grammar import NOT_SPECIFIED
from pandamon.listing import Listing
from pandamon.pages import error_page, render_page

from . import error_selectors
from .error_selectors import ERROR_SOURCES
from .signatures import PLACEHOLDERS

# Parameters that are about this page's output, not the selection: not carried into links.
NOT_CARRIED = ("json", "after", "limit", "sortby", "cursor")
COMPONENT_HELP = {
    "pilot": "the pilot on the worker node: stage-in/out, setup, signals, lost payload (codes of pilot3)",
    "exe": "the payload (transformation) itself: its exit code and the last line of its stderr",
    "job_dispatcher": "the server's watchers: lost heartbeat, sent/holding/transferring timeouts",
    "ddm": "data management: input preparation (setupper) and output registration (adder)",
    "brokerage": "no site can run the job, or its assigned site cannot",
    "task_buffer": "the job was killed, expired, aborted or reassigned by a person or the system",
    "sup": "the supervisor (server-side checks of the job's definition)",
    "server": "other server-side failures",
}


def errors_summary(request):
    try:
        summary = error_selectors.error_summary(request.GET)
    except ServiceError as error:
        return error_page(request, error)
    selection = summary["selection"]
    carried = {name: value for name, value in selection.params.items() if name not in NOT_CARRIED}
    _add_links(summary, carried)
    histogram = summary["histogram"]
    listing = _listing(selection, summary, carried, total=histogram["total"])
    data = _json_twin(listing, summary)
    figure = plots.stacked_time_histogram(
        histogram["bins"], histogram["series"], width=selection.bins.width,
        title=f"Failures per {selection.bins.label}, by main error", y_title="failed jobs",
    )  # fmt: skip
    context = {"listing": listing, "summary": summary, "data": data, "figures": {"histogram": figure},
               "noun": "failed job", "components": COMPONENT_HELP, "placeholders": PLACEHOLDERS.values(),
               "defaulted": selection.defaulted,
               "series_shown": error_selectors.HISTOGRAM_SERIES}  # fmt: skip
    return render_page(request, "jobs/errors.html", context, json_data=data)


def _jobs_url(carried, **changes):
    return reverse("jobs-page") + "?" + urlencode({**carried, **changes})


def _add_links(summary, carried):
    """Each row links to the jobs it counts (/jobs/ with the same filters and window plus its own)."""
    for row in summary["by_code"]:
        row["jobs_url"] = _jobs_url(carried, **{row["param"]: row["code"]}) if row["param"] else None
    for row in summary["by_site"]:
        row["jobs_url"] = _jobs_url(carried, computingsite=row["site"])
    for row in summary["by_user"]:
        row["jobs_url"] = _jobs_url(carried, produsername=row["user"])
    for row in summary["by_task"]:
        # taskid= is an integer filter: jobs without a task cannot be selected by it.
        row["jobs_url"] = None if row["task"] == NOT_SPECIFIED else _jobs_url(carried, taskid=row["task"])
    params = {source.component: source.param for source in ERROR_SOURCES}
    for row in summary["signatures"]:
        param = params[row["component"]]
        row["jobs_url"] = _jobs_url(carried, **{param: row["code"]}) if param and row["code"] else None


def _listing(selection, summary, carried, *, total):
    """A Listing without rows, so the shared head (window, chips, attribute summary) shows this selection."""
    filterset = selection.filterset
    given = {name: value for name, value in selection.params.items()
             if name in filterset.filters and name not in selection.defaulted}  # fmt: skip
    return Listing(
        filters=given, window=filterset.window, facets=summary["facets"] if total else {},
        facets_truncated=summary["facets_truncated"],
        total=total, total_more_than=None, rows=[], sortby="", sort_options=[], limit=0, next_url=None,
        querystring=urlencode(carried),
    )  # fmt: skip


def _json_twin(listing, summary):
    envelope = listing.envelope()
    meta = {**envelope["meta"], "defaults": summary["selection"].defaulted, "bins": summary["histogram"]["bin"]}
    for name in ("limit", "next", "sortby"):
        meta.pop(name)
    histogram = summary["histogram"]
    return {
        "meta": meta,
        "facets": envelope["facets"],
        "histogram": {"field": histogram["field"], "bins": histogram["bins"],
                      "series": [{"name": name, "counts": counts} for name, counts in histogram["series"].items()]},
        "by_code": [{key: value for key, value in row.items() if key != "param"} for row in summary["by_code"]],
        "by_site": summary["by_site"], "by_site_more": summary["by_site_more"],
        "by_user": summary["by_user"], "by_user_more": summary["by_user_more"],
        "by_task": summary["by_task"], "by_task_more": summary["by_task_more"],
        "signatures": summary["signatures"], "signatures_meta": summary["signatures_meta"],
    }  # fmt: skip

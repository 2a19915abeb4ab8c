"""Reads for the errors summary and the job plots: aggregates over a window of jobs.

Everything is grouped and counted in the database (GROUP BY, Trunc, Case) and comes back
as one row per group, never one row per job; the selection is the job grammar
(JobFilterSet) with its time window, so these pages and /jobs/ select the same jobs.
"""

from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Case, Count, DurationField, ExpressionWrapper, F, IntegerField, Max, Min, Q, Value, When
from django.db.models.lookups import LessThan
from django.utils import timezone

from pandamon.grammar import NOT_SPECIFIED
from pandamon.listing import counts_of, counts_together, facet_counts, valid_filterset
from pandamon.plots import OTHER, TimeBins, series_over_bins
from pilot.errors import MESSAGES as PILOT_MESSAGES

from . import errorcodes
from .choices import JobStatus
from .errorcodes import ERROR_SOURCES
from .filters import JOB_TYPES, JobFilterSet
from .models import Job
from .signatures import normalize

NO_ERROR_CODE = "no error code"
TABLE_ROWS = 100  # rows of each "by" table; the rest is counted, not listed
GROUPS_COUNTED = 1000  # values of a "by" table read at most ("more than" beyond)
DIAG_GROUPS_READ = 5000  # distinct sets of diagnostics read to make signatures from
COMBINATIONS_READ = 5000  # combinations of columns counted together in one pass, at most
SIGNATURES_SHOWN = 50
EXAMPLES_PER_SIGNATURE = 5
HISTOGRAM_SERIES = 8


def describe(component, code):
    """What an error code means; the pilot's own table covers the codes jobs.errorcodes lacks."""
    meaning = errorcodes.describe(component, code)
    if not meaning and component == "pilot":
        meaning = PILOT_MESSAGES.get(code, "")
    if not meaning and component == "exe" and code:
        meaning = "the payload's exit code"
    return meaning


# ---------------------------------------------------------------- the selection


@dataclass
class Selection:
    filterset: JobFilterSet
    jobs: object  # the QuerySet
    params: dict
    bins: TimeBins | None = None
    defaulted: dict = field(default_factory=dict)


def select_jobs(params, *, defaults=None, queryset=None):
    """The JobFilterSet selection of `params` (with `defaults` for parameters not given).

    Raises InvalidInput (a 400 naming the parameter) on a bad value, as the job list does."""
    params = params.copy()
    defaulted = {name: value for name, value in (defaults or {}).items() if not params.get(name)}
    for name, value in defaulted.items():
        params[name] = value  # (QueryDict.update would append a second value)
    filterset = valid_filterset(JobFilterSet, params, Job.objects.all() if queryset is None else queryset)
    return Selection(filterset, filterset.qs.order_by(), params, defaulted=defaulted)


def with_time_bins(selection):
    """Bins over the selection's window; a window without a start (a deep query) spans its jobs' times."""
    window = selection.filterset.window
    field_name = window.field if window else "modification_time"
    start, end = (window.start, window.end) if window else (None, None)
    if start is None:
        span = selection.jobs.aggregate(first=Min(field_name), last=Max(field_name))
        start = span["first"] or timezone.now() - timedelta(hours=1)
        end = end or (span["last"] + timedelta(microseconds=1) if span["last"] else timezone.now())
    selection.bins = TimeBins.for_span(start, end or timezone.now())
    return selection


def has_error_q():
    condition = Q()
    for source in ERROR_SOURCES:
        condition |= ~Q(**{source.code: 0})
    return condition


def failure_selection(params):
    """Failed jobs (the default jobstatus) and holding ones with an error code, in the job grammar's window."""
    selection = select_jobs(params, defaults={"jobstatus": JobStatus.FAILED.value})
    selection.jobs = selection.jobs.filter(~Q(status=JobStatus.HOLDING) | has_error_q())
    return with_time_bins(selection)


# ---------------------------------------------------------------- errors summary tables
#
# Each pass over the window's failed jobs costs a scan of them (tens of ms with 10,000 failures in
# 12 h), so the tables share passes: one GROUP BY (time bin, the eight codes) makes the histogram
# and the code table, one GROUP BY (codes, diagnostics) the signatures.

CODE_FIELDS = tuple(source.code for source in ERROR_SOURCES)
DIAG_FIELDS = tuple(source.diag for source in ERROR_SOURCES)
# Per group of codes: its jobs, the newest of them, and a sample diagnostic of each component.
CODE_AGGREGATES = {"n": Count("pk"), "example": Max("pandaid"),
                   **{f"sample_{source.component}": Max(source.diag) for source in ERROR_SOURCES}}  # fmt: skip


def main_error(row):
    """`component:code` of the first component with an error code (the order of ERROR_SOURCES)."""
    for source in ERROR_SOURCES:
        if row[source.code]:
            return f"{source.component}:{row[source.code]}"
    return NO_ERROR_CODE


def error_counts(selection, *, top=HISTOGRAM_SERIES):
    """The failure histogram and the code table, from one GROUP BY over (time bin, the eight codes).

    Each job falls in one bin and one series (its main error), so the bins add up to the
    selection's count; in the code table a job with errors of two components counts under both."""
    bins = selection.bins
    field_name = selection.filterset.window.field if selection.filterset.window else "modification_time"
    rows = list(selection.jobs.values(*CODE_FIELDS, **bins.expressions(field_name))
                .annotate(**CODE_AGGREGATES).order_by())  # fmt: skip
    series = series_over_bins(rows, bins, name_of=main_error, top=top)
    histogram = {"bins": bins.edges(), "bin": bins.as_dict(), "field": field_name, "series": series,
                 "total": sum(row["n"] for row in rows)}  # fmt: skip
    return histogram, code_table(rows)


def failures_by_code(jobs):
    """The code table of failed jobs on their own (the site and user pages): one GROUP BY over the codes.
    Jobs without any code are one "none" row."""
    rows = list(jobs.values(*CODE_FIELDS).annotate(**CODE_AGGREGATES).order_by())
    table = code_table(rows)
    uncoded = sum(row["n"] for row in rows if not any(row[column] for column in CODE_FIELDS))
    if uncoded:
        table.append({"component": "none", "code": 0, "meaning": "", "count": uncoded, "sample_diag": "",
                      "example_pandaid": None, "param": None})  # fmt: skip
        table.sort(key=lambda entry: (-entry["count"], entry["component"], entry["code"]))
    return table


def code_table(rows):
    """[{component, code, meaning, count, sample_diag, example_pandaid, param}] most frequent first, from rows
    grouped by the code columns (with CODE_AGGREGATES); a job with errors of two components counts under both."""
    table = {}
    for row in rows:
        for source in ERROR_SOURCES:
            code = row[source.code]
            if not code:
                continue
            entry = table.setdefault((source.component, code), {
                "component": source.component, "code": code, "meaning": describe(source.component, code),
                "count": 0, "sample_diag": "", "example_pandaid": 0, "param": source.param})  # fmt: skip
            entry["count"] += row["n"]
            entry["sample_diag"] = max(entry["sample_diag"], row[f"sample_{source.component}"] or "")
            entry["example_pandaid"] = max(entry["example_pandaid"], row["example"])
    return sorted(table.values(), key=lambda entry: (-entry["count"], entry["component"], entry["code"]))


def count_by(jobs, lookup, *, limit=TABLE_ROWS):
    """([(value, count)] most frequent first, more): counted by GROUP BY; `more` is how many values are
    not listed, up to GROUPS_COUNTED (so a wide window does not bring back every task it has)."""
    pairs = counts_of(jobs, lookup, max_values=GROUPS_COUNTED)
    return pairs[:limit], max(0, len(pairs) - limit)


def facets_of(jobs, filterset, names):
    """The attribute summary (pandamon.listing.facet_counts) of the facets `names` only."""
    return facet_counts(jobs, [(name, lookup) for name, lookup in filterset.facet_lookups() if name in names])


def users_and_tasks(jobs, *, limit=TABLE_ROWS):
    """Failures by owner and by task: one pass over (task, owner) pairs, or one per column if there are many."""
    together = counts_together(jobs, ["task_id", "prod_user_name"], max_rows=COMBINATIONS_READ)
    if together is None:
        return count_by(jobs, "prod_user_name", limit=limit), count_by(jobs, "task_id", limit=limit)
    users, tasks = together["prod_user_name"], together["task_id"]
    return (users[:limit], max(0, len(users) - limit)), (tasks[:limit], max(0, len(tasks) - limit))


def site_failure_rates(selection, *, limit=TABLE_ROWS):
    """Failed jobs per site with the finished jobs of the same sites, filters and window."""
    failed, more = count_by(selection.jobs, "computing_site__name", limit=limit)
    names = [name for name, _ in failed if name != NOT_SPECIFIED]
    finished_params = selection.params.copy()
    finished_params["jobstatus"] = JobStatus.FINISHED.value
    finished_jobs = select_jobs(finished_params, queryset=Job.objects.filter(computing_site__name__in=names)).jobs
    finished = dict(finished_jobs.values_list("computing_site__name").annotate(n=Count("pk")).order_by())
    rows = []
    for name, n_failed in failed:
        n_finished = finished.get(name, 0)
        rows.append({"site": name, "failed": n_failed, "finished": n_finished,
                     "pct_failed": round(100 * n_failed / (n_failed + n_finished), 1)})  # fmt: skip
    return rows, more


# ---------------------------------------------------------------- diagnostic signatures


def diagnostic_signatures(jobs, *, total, shown=SIGNATURES_SHOWN, read=DIAG_GROUPS_READ):
    """Identical failures grouped by component, code and normalised diagnostic.

    SQL counts the jobs of each distinct set of (codes, diagnostics); the `read` most frequent
    sets are normalised here and merged. Jobs in rarer sets are counted, not grouped."""
    grouped = (jobs.values(*CODE_FIELDS, *DIAG_FIELDS).annotate(n=Count("pk"), example=Max("pandaid"))
               .order_by("-n", *CODE_FIELDS, *DIAG_FIELDS))  # fmt: skip
    rows = list(grouped[:read])
    merged = {}
    for row in rows:
        for source in ERROR_SOURCES:
            code, diag = row[source.code], row[source.diag]
            if code or diag:
                _merge_signature(merged, source.component, code, diag, row)
    ranked = sorted(merged.values(), key=lambda entry: (-entry["count"], entry["component"], entry["signature"]))
    jobs_read = sum(row["n"] for row in rows)
    meta = {"signatures": len(ranked), "shown": min(shown, len(ranked)), "diag_groups_read": len(rows),
            "jobs_not_grouped": total - jobs_read}  # fmt: skip
    return ranked[:shown], meta


def _merge_signature(merged, component, code, diag, row):
    key = (component, code, normalize(diag))
    entry = merged.get(key)
    if entry is None:
        entry = merged[key] = {"component": component, "code": code, "signature": key[2],
                               "meaning": describe(component, code), "count": 0, "distinct_diags": set(),
                               "sample_diag": diag, "example_pandaids": []}  # fmt: skip
    entry["count"] += row["n"]
    entry["distinct_diags"].add(diag)
    if len(entry["example_pandaids"]) < EXAMPLES_PER_SIGNATURE:
        entry["example_pandaids"].append(row["example"])


# ---------------------------------------------------------------- the summary


# The facets the "by" tables do not already show.
SUMMARY_FACETS = ("jobstatus", "cloud", "prodsourcelabel", "processingtype", "attemptnr", "corecount")


def error_summary(params):
    """Everything the errors page shows, from one selection."""
    selection = failure_selection(params)
    jobs = selection.jobs
    facets, facets_truncated = facets_of(jobs, selection.filterset, SUMMARY_FACETS)
    histogram, by_code = error_counts(selection)
    sites, sites_more = site_failure_rates(selection)
    (users, users_more), (tasks, tasks_more) = users_and_tasks(jobs)
    signatures, signatures_meta = diagnostic_signatures(jobs, total=histogram["total"])
    for entry in signatures:
        entry["distinct_diags"] = len(entry["distinct_diags"])
    return {
        "selection": selection,
        "facets": facets,
        "facets_truncated": facets_truncated,
        "histogram": histogram,
        "by_code": by_code,
        "by_site": sites,
        "by_site_more": sites_more,
        "by_user": [{"user": user, "failed": n} for user, n in users],
        "by_user_more": users_more,
        "by_task": [{"task": task, "failed": n} for task, n in tasks],
        "by_task_more": tasks_more,
        "signatures": signatures,
        "signatures_meta": signatures_meta,
    }


# ---------------------------------------------------------------- job timing and state plots

# Bin edges (seconds) of the wait and duration histograms: each about twice the last (a log scale with round
# numbers), so minutes-long and day-long jobs both get readable bins.
MINUTE, HOUR, DAY = 60, 3600, 86400
TIMING_EDGES = (MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 20 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR, 4 * HOUR,
                8 * HOUR, 12 * HOUR, DAY, 2 * DAY, 4 * DAY)  # fmt: skip
TIMINGS = {
    "wait": ("creation_time", "start_time"),
    "duration": ("start_time", "end_time"),
}
TIMING_SITES_SHOWN = 10


def timing_bucket_labels(edges=TIMING_EDGES):
    """'0–1 min', '1–2 min', …, '30 min–1 h', …, '≥ 2 d'."""
    labels, low = [], 0
    for high in edges:
        (low_n, low_unit), (high_n, high_unit) = _in_unit(low), _in_unit(high)
        same = low_unit == high_unit or low == 0
        labels.append(f"{low_n}–{high_n} {high_unit}" if same else f"{low_n} {low_unit}–{high_n} {high_unit}")
        low = high
    labels.append("≥ {} {}".format(*_in_unit(low)))
    return labels


def _in_unit(seconds):
    if seconds < 3600:
        return seconds // 60, "min"
    if seconds < DAY:
        return seconds // 3600, "h"
    return seconds // 86400, "d"


def timing_distributions(jobs, *, edges=TIMING_EDGES):
    """{wait: ..., duration: ...}: jobs per span bucket, by site and by job type, from one GROUP BY.

    Each job's wait bucket and duration bucket are CASEs over its spans, computed in SQL; only the
    (wait bucket, duration bucket, site, label) counts come back, and each distribution is a sum of
    those. A job without an end has a wait but no duration."""
    buckets = {measure: _span_bucket(start, end, edges) for measure, (start, end) in TIMINGS.items()}
    # COUNT(*), not COUNT(pk): the window is read from the covering job_modification_time index alone.
    rows = list(jobs.filter(start_time__isnull=False).values("computing_site__name", "prod_source_label", **buckets)
                .annotate(n=Count("*")).order_by())  # fmt: skip
    return {measure: _distribution(rows, measure, edges) for measure in TIMINGS}


def _span_bucket(start, end, edges):
    """The index of the bucket of (end - start) in `edges`, NULL when either time is missing."""
    span = ExpressionWrapper(F(end) - F(start), output_field=DurationField())
    whens = [When(LessThan(span, timedelta(seconds=edge)), then=Value(index)) for index, edge in enumerate(edges)]
    missing = Q(**{f"{start}__isnull": True}) | Q(**{f"{end}__isnull": True})
    return Case(When(missing, then=Value(None)), *whens, default=Value(len(edges)), output_field=IntegerField())


def _distribution(rows, measure, edges):
    rows = [{**row, "bucket": row[measure]} for row in rows if row[measure] is not None]
    n_buckets = len(edges) + 1
    start, end = TIMINGS[measure]
    by_site = _bucket_series(rows, n_buckets, lambda row: row["computing_site__name"] or NOT_SPECIFIED,
                             top=TIMING_SITES_SHOWN)  # fmt: skip
    by_type = _bucket_series(rows, n_buckets, lambda row: job_type_of(row["prod_source_label"]))
    return {"measure": measure, "from": start, "to": end, "buckets": timing_bucket_labels(edges),
            "edges_seconds": list(edges), "by_site": by_site, "by_type": by_type,
            "total": sum(row["n"] for row in rows)}  # fmt: skip


def _bucket_series(rows, n_buckets, name_of, *, top=None):
    totals = {}
    for row in rows:
        totals[name_of(row)] = totals.get(name_of(row), 0) + row["n"]
    names = sorted(totals, key=lambda name: (-totals[name], name))
    kept = set(names[:top] if top else names)
    series = {name: [0] * n_buckets for name in names if name in kept}
    for row in rows:
        name = name_of(row) if name_of(row) in kept else OTHER
        series.setdefault(name, [0] * n_buckets)[row["bucket"]] += row["n"]
    return series


LABEL_TYPES = {label: job_type for job_type, labels in JOB_TYPES.items() for label in labels}


def job_type_of(prod_source_label):
    """analysis / production / test (the jobtype= shortcut of the job grammar), or the label itself."""
    return LABEL_TYPES.get(prod_source_label, prod_source_label or NOT_SPECIFIED)


# What "jobs over time" counts: (series, the Job time column of the event). Ended jobs are split by their
# final state. The job's own times, not JobStatusLog: the log has no index on its time (it is written
# on every state change), so a window of it is a scan of the whole log, seconds at a few million rows.
JOB_EVENTS = (("created", "creation_time"), ("started", "start_time"), ("ended", "end_time"))


def jobs_over_time(selection):
    """Jobs created, started and ended (by final state) per time bin of the window, counted in SQL."""
    bins = selection.bins
    series_rows = []
    for event, field_name in JOB_EVENTS:
        events = selection.jobs.filter(**{f"{field_name}__gte": bins.start, f"{field_name}__lt": bins.end})
        extra = {"state": F("status")} if event == "ended" else {}
        rows = events.values(**bins.expressions(field_name), **extra).annotate(n=Count("*")).order_by()
        series_rows += [{**row, "series": row.get("state", event)} for row in rows]
    series = series_over_bins(series_rows, bins, name_of=lambda row: row["series"])
    order = ["created", "started", *JobStatus.values]
    series = dict(sorted(series.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order)))
    return {"bins": bins.edges(), "bin": bins.as_dict(), "series": series,
            "totals": {name: sum(counts) for name, counts in series.items()}}  # fmt: skip


def plot_data(params):
    """The plots page's data: wait and duration distributions (finished jobs unless jobstatus= says
    otherwise) and jobs created, started and ended over time (all the selected jobs)."""
    timed = select_jobs(params, defaults={"jobstatus": JobStatus.FINISHED.value})
    everything = with_time_bins(select_jobs(params))
    return {"timing_selection": timed, "selection": everything, **timing_distributions(timed.jobs),
            "jobs_over_time": jobs_over_time(everything)}  # fmt: skip

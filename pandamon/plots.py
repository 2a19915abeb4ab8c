"""Time bins for SQL GROUP BY, and plotly figures as JSON-able dicts.

Pages count in the database (one row per bin and series, never one row per job) and
hand the counts to the figure builders here. A figure is plain JSON (`data`, `layout`)
that templates/includes/plotly.html draws with the plotly.js of our static files.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import plotly.graph_objects as go
from django.db.models import IntegerField
from django.db.models.functions import Cast, ExtractMinute, TruncDay, TruncHour, TruncWeek

OTHER = "other"  # the series that sums the ones not shown by name

# ---------------------------------------------------------------- time bins

# (longest window, bin unit): 72 to 92 bins up to three months, weeks beyond.
BIN_UNITS = (
    (timedelta(hours=12), "10min"),
    (timedelta(days=3), "hour"),
    (timedelta(days=92), "day"),
    (None, "week"),
)
UNIT_WIDTHS = {"10min": timedelta(minutes=10), "hour": timedelta(hours=1), "day": timedelta(days=1),
               "week": timedelta(weeks=1)}  # fmt: skip
UNIT_TRUNCS = {"10min": TruncHour, "hour": TruncHour, "day": TruncDay, "week": TruncWeek}
UNIT_LABELS = {"10min": "10 minutes", "hour": "hour", "day": "day", "week": "week"}


@dataclass(frozen=True)
class TimeBins:
    """Equal bins from `start` (aligned on the unit) to `end`; bin keys are computed by the database."""

    unit: str
    start: datetime
    end: datetime

    @classmethod
    def for_span(cls, start, end):
        """Bins sized to the window: 10 min up to 12 h, 1 h up to 3 days, 1 day up to 3 months, then weeks."""
        span = end - start
        # A little slack: the default 12 h window measured a moment later is still "12 h".
        unit = next(unit for longest, unit in BIN_UNITS if longest is None or span <= longest * 1.01)
        return cls(unit, _floor(start, unit), end)

    @property
    def width(self):
        return UNIT_WIDTHS[self.unit]

    @property
    def label(self):
        """'10 minutes', 'hour', ... as in "failures per hour"."""
        return UNIT_LABELS[self.unit]

    def expressions(self, field):
        """values() keyword expressions that put a row of `field` into its bin (Trunc functions in SQL)."""
        expressions = {"bin_at": UNIT_TRUNCS[self.unit](field, tzinfo=UTC)}
        if self.unit == "10min":
            # The hour, plus which tenth of it: integer division after a cast, the same on PostgreSQL and SQLite.
            expressions["bin_tenth"] = Cast(ExtractMinute(field, tzinfo=UTC), IntegerField()) / 10
        return expressions

    def key(self, row):
        """The start of the bin of a row grouped by `expressions()`."""
        at = row["bin_at"]
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        if self.unit == "10min":
            at += timedelta(minutes=10 * int(row["bin_tenth"]))
        return at

    def edges(self):
        """The start of every bin, from the first to the one holding `end`."""
        edges, at = [], self.start
        while at < self.end or not edges:
            edges.append(at)
            at += self.width
        return edges

    def as_dict(self):
        return {"unit": self.unit, "width_seconds": int(self.width.total_seconds()), "start": self.start,
                "end": self.end}  # fmt: skip


def _floor(moment, unit):
    moment = moment.astimezone(UTC)
    if unit == "10min":
        return moment.replace(minute=moment.minute - moment.minute % 10, second=0, microsecond=0)
    if unit == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday()) if unit == "week" else day


def series_over_bins(rows, bins, *, name_of, top=None):
    """{series name: [count per bin]} from grouped rows (each with bin keys and "n").

    With `top`, the `top` biggest series are kept and the rest summed as `other`."""
    edges = bins.edges()
    index = {edge: position for position, edge in enumerate(edges)}
    totals = {}
    for row in rows:
        totals[name_of(row)] = totals.get(name_of(row), 0) + row["n"]
    kept = sorted(totals, key=lambda name: (-totals[name], str(name)))
    if top is not None and len(kept) > top:
        kept = kept[:top]
    series = {name: [0] * len(edges) for name in kept}
    for row in rows:
        name = name_of(row)
        if name not in series:
            series.setdefault(OTHER, [0] * len(edges))
            name = OTHER
        position = index.get(bins.key(row))
        if position is not None:
            series[name][position] += row["n"]
    return series


# ---------------------------------------------------------------- figures

LAYOUT = {
    "template": "plotly_white",
    "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
    "height": 360,
    "legend": {"orientation": "v", "font": {"size": 11}},
    "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
}


OTHER_COLOR = "#b0b7c3"  # the "everything else" series is grey in every plot


def _marker(name):
    return {"color": OTHER_COLOR} if name == OTHER else None


def _figure(traces, **layout):
    figure = go.Figure(data=traces, layout={**LAYOUT, **layout})
    return json.loads(figure.to_json())


def stacked_time_histogram(edges, series, *, width, title, y_title="jobs"):
    """Stacked bars, one per time bin (bar starts at the bin's start and spans its width)."""
    width_ms = width.total_seconds() * 1000
    x = [edge + width / 2 for edge in edges]  # plotly centres bars on x
    traces = [go.Bar(x=x, y=counts, name=str(name), width=width_ms, marker=_marker(name),
                     hovertemplate="%{y}<extra>%{fullData.name}</extra>") for name, counts in series.items()]  # fmt: skip
    return _figure(traces, title={"text": title}, barmode="stack", bargap=0, yaxis={"title": {"text": y_title}},
                   xaxis={"type": "date"}, hovermode="x unified")  # fmt: skip


def time_lines(edges, series, *, width, title, y_title="jobs", hidden=()):
    """One line per series over time bins (points at the bin centres); `hidden` series start switched off
    (a click on the legend shows them)."""
    x = [edge + width / 2 for edge in edges]
    traces = [go.Scatter(x=x, y=counts, name=str(name), mode="lines+markers", line={"shape": "hv"},
                         marker={"size": 4}, visible="legendonly" if name in hidden else True)
              for name, counts in series.items()]  # fmt: skip
    return _figure(traces, title={"text": title}, yaxis={"title": {"text": y_title}}, xaxis={"type": "date"},
                   hovermode="x unified")  # fmt: skip


def stacked_category_histogram(categories, series, *, title, x_title, y_title="jobs"):
    """Stacked bars over named bins (duration ranges), one trace per series; empty bins at both ends are left out."""
    first, last = _used_range(series, len(categories))
    traces = [go.Bar(x=list(categories[first:last]), y=counts[first:last], name=str(name), marker=_marker(name))
              for name, counts in series.items()]  # fmt: skip
    return _figure(traces, title={"text": title}, barmode="stack", xaxis={"title": {"text": x_title}, "type": "category"},
                   yaxis={"title": {"text": y_title}})  # fmt: skip


def _used_range(series, length):
    """(first, last + 1) of the bins some series counts something in; everything when nothing is counted."""
    used = [index for index in range(length) if any(counts[index] for counts in series.values())]
    return (used[0], used[-1] + 1) if used else (0, length)

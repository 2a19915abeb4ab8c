"""Run a list page: the grammar's selection, its attribute summary, one keyset page of rows.

The HTML page and its JSON twin both come from `Listing.envelope()`, so they cannot
disagree: `{meta: {filters, window, total, next, ...}, facets, rows}`.
"""

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from django.db.models import Count, Q

from .errors import InvalidInput
from .grammar import NOT_SPECIFIED

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
FACET_VALUES_SHOWN = 40
# Counting more rows than this just to print a number is not worth it: we say "more than N".
COUNT_CAP = 100_000
# Facets are counted in one GROUP BY over all their columns when the selection has at most this many
# value combinations (fetched and summed per facet in Python), else with one GROUP BY per facet.
COMBINED_FACET_ROWS = 20_000


@dataclass
class Listing:
    filters: dict
    window: object
    facets: dict
    facets_truncated: dict
    total: int | None
    total_more_than: int | None
    rows: list
    sortby: str
    sort_options: list
    limit: int
    next_url: str | None
    querystring: str

    def envelope(self):
        return {
            "meta": {
                "filters": self.filters,
                "window": self.window.as_dict() if self.window else None,
                "total": self.total,
                "total_more_than": self.total_more_than,
                "sortby": self.sortby,
                "limit": self.limit,
                "next": self.next_url,
            },
            "facets": {
                name: [{"value": value, "count": n} for value, n in pairs] for name, pairs in self.facets.items()
            },
            "rows": self.rows,
        }


def run_listing(request, *, filterset_class, queryset, columns, facets=True, params=None):
    """The selection of `filterset_class` over `queryset` for this request, as a Listing.

    `columns` are the `.values()` names of each row. Raises InvalidInput (a 400) on a bad parameter."""
    params = request.GET if params is None else params
    filterset = valid_filterset(filterset_class, params, queryset)
    selection = filterset.qs.order_by()
    limit = parse_limit(params.get("limit"))
    sortby, order = _sort(filterset, params.get("sortby"))
    counts, truncated = facet_counts(selection, filterset.facet_lookups()) if facets else ({}, {})
    total, more_than = _total(selection, counts, truncated)
    page = selection.order_by(*order)
    after = params.get("after")
    if after:
        page = page.filter(_after_q(order, _decode_cursor(after, len(order))))
    rows = list(page.values(*columns, *_bare(order))[: limit + 1])
    next_url = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_url = "?" + _querystring(params, after=_encode_cursor([rows[-1][name] for name in _bare(order)]))
    return Listing(
        filters={name: value for name, value in params.items() if name in filterset.filters},
        window=filterset.window,
        facets=counts,
        facets_truncated=truncated,
        total=total,
        total_more_than=more_than,
        rows=[{name: row[name] for name in columns} for row in rows],
        sortby=sortby,
        sort_options=list(filterset.sort_keys),
        limit=limit,
        next_url=next_url,
        querystring=_querystring(params),
    )


def valid_filterset(filterset_class, params, queryset):
    """The bound FilterSet of `params`; InvalidInput (a 400 naming each bad parameter) when it is not valid."""
    filterset = filterset_class(params, queryset=queryset)
    if not filterset.is_valid():
        raise InvalidInput("invalid filter: " + errors_line(filterset.errors), details=filterset.errors)
    return filterset


def errors_line(errors):
    return "; ".join(f"{name}: {' '.join(messages)}" if name != "__all__" else " ".join(messages)
                     for name, messages in errors.items())  # fmt: skip


def facet_counts(selection, lookups):
    """{parameter: [(value, count), ...]} most frequent first, counted by GROUP BY over the whole selection.

    One GROUP BY over all the facet columns together, summed per facet here, reads the selection
    once instead of once per facet (at 100,000 jobs in a window each pass costs ~100 ms); when the
    value combinations are too many to fetch, each facet gets its own GROUP BY instead."""
    columns = [lookup for _, lookup in lookups]
    together = counts_together(selection, columns) if len(columns) > 1 else None
    counts, truncated = {}, {}
    for name, lookup in lookups:
        pairs = together[lookup] if together else counts_of(selection, lookup)
        counts[name] = pairs[:FACET_VALUES_SHOWN]
        truncated[name] = max(0, len(pairs) - FACET_VALUES_SHOWN)
    return counts, truncated


def counts_of(selection, lookup, *, max_values=None):
    """[(value, count)] of one column, most frequent first (at most `max_values` values read)."""
    grouped = selection.values_list(lookup).annotate(n=Count("*")).order_by("-n", lookup)
    return merge_not_specified(grouped[:max_values] if max_values else grouped)


def counts_together(selection, lookups, *, max_rows=COMBINED_FACET_ROWS):
    """{lookup: [(value, count)] most frequent first} of several columns from ONE GROUP BY over all of them,
    summed per column here; None when the selection has more than `max_rows` value combinations."""
    rows = list(selection.values_list(*lookups).annotate(n=Count("*")).order_by()[: max_rows + 1])
    if len(rows) > max_rows:
        return None
    sums = {lookup: {} for lookup in lookups}
    for *values, n in rows:
        for lookup, value in zip(lookups, values, strict=True):
            sums[lookup][value] = sums[lookup].get(value, 0) + n
    return {lookup: merge_not_specified(column.items()) for lookup, column in sums.items()}


def merge_not_specified(pairs):
    """NULL and '' are one value for the grammar ("Not specified"), so they are one entry.
    Most frequent first, then by value."""
    merged = {}
    for value, n in pairs:
        value = NOT_SPECIFIED if value in (None, "") else value
        merged[value] = merged.get(value, 0) + n
    return sorted(merged.items(), key=lambda pair: (-pair[1], str(pair[0])))


def _total(selection, counts, truncated):
    # Every facet partitions the whole selection, so a complete facet's counts add up to the total.
    for name, pairs in counts.items():
        if not truncated[name]:
            return sum(n for _, n in pairs), None
    capped = selection.values("pk")[: COUNT_CAP + 1].count()
    return (capped, None) if capped <= COUNT_CAP else (None, COUNT_CAP)


def parse_limit(raw):
    """The rows-per-page parameter: DEFAULT_LIMIT when not given, InvalidInput outside 1..MAX_LIMIT."""
    if raw in (None, ""):
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise InvalidInput(f"limit must be an integer, got {raw[:40]!r}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def _sort(filterset, raw):
    sortby = raw or filterset.default_sort
    key = sortby.removeprefix("-")
    if key not in filterset.sort_keys:
        raise InvalidInput(
            f"sortby must be one of {', '.join(filterset.sort_keys)} (prefix - for descending), got {sortby[:40]!r}"
        )
    descending = sortby.startswith("-")
    return sortby, [f"-{name}" if descending else name for name in filterset.sort_keys[key]]


def _bare(order):
    return [name.removeprefix("-") for name in order]


def _after_q(order, values):
    """Rows strictly after `values` in `order`: (a > x) or (a = x and b > y) ... (the keyset condition)."""
    condition = Q()
    equal = Q()
    for name, value in zip(order, values, strict=True):
        field = name.removeprefix("-")
        step = "lt" if name.startswith("-") else "gt"
        condition |= equal & Q(**{f"{field}__{step}": value})
        equal &= Q(**{field: value})
    return condition


def _encode_cursor(values):
    plain = [value.isoformat() if isinstance(value, datetime) else value for value in values]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


def _decode_cursor(raw, length):
    try:
        values = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, binascii.Error):
        raise InvalidInput("after is not a cursor this page gave out (follow the 'next' link)") from None
    if not isinstance(values, list) or len(values) != length:
        raise InvalidInput("after does not match the sort order (follow the 'next' link without changing sortby)")
    return values


def _querystring(params, **changes):
    merged = {name: value for name, value in params.items() if name not in ("after", "json")}
    merged.update(changes)
    return urlencode(merged)

"""Portal pages of the data flow: subscriptions, a subscription, the transfer queue, channels and throughput.

Each page has its JSON twin built from the same data (pandamon.pages.render_page). The lists take the API's
filters (datasets.filters); their window keeps live work whatever its age (docs/portal.md).
"""

from datetime import timedelta
from urllib.parse import urlencode

from django.utils import timezone

from pandamon import plots
from pandamon.errors import InvalidInput, ServiceError
from pandamon.grammar import WINDOW_PARAMS
from pandamon.listing import FACET_VALUES_SHOWN, Listing, valid_filterset
from pandamon.pages import error_page, list_page, render_page

from . import flow_selectors as selectors
from .choices import Activity, DatasetKind, SubscriptionState, TransferState
from .filters import ChannelPageFilterSet, SubscriptionPageFilterSet, TransferPageFilterSet
from .models import TransferChannelStat, TransferRequest

HELP = {"subscription_states": SubscriptionState, "transfer_states": TransferState, "activities": Activity}
SUBSCRIPTION_COLUMNS = ("id", "dataset__name", "dataset__kind", "dataset__n_files", "dataset__bytes", "site__name",
                        "owner_name", "activity", "priority", "state", "reason", "files_present", "bytes_present",
                        "created_at", "modified_at", "evaluated_at", "stuck_at", "done_at")  # fmt: skip
TRANSFER_COLUMNS = ("id", "file__lfn", "file__fsize", "source__name", "destination__name", "activity", "priority",
                    "state", "attempts", "error", "tool", "bytes", "requested_at", "next_attempt_at", "submitted_at",
                    "finished_at", "seconds")  # fmt: skip
# A container subscription's counts link to the transfer list with its datasets as `dataset=a|b|...` up to this many.
MAX_LINKED_MEMBERS = 20
CHANNEL_MAX_DAYS = 31
CHANNELS_SHOWN = 200  # table rows; the JSON twin lists every channel
PLOT_SERIES = 8
PLOT_TITLES = {"bytes": "Throughput: bytes/s, mean of each {bin}", "files": "Files transferred per {bin}",
               "failures": "Failed transfer attempts per {bin}"}  # fmt: skip


# ---------------------------------------------------------------- subscriptions


def subscription_list(request):
    return list_page(
        request, "dataflow/subscription_list.html", filterset_class=SubscriptionPageFilterSet,
        queryset=selectors.subscription_rows(), columns=SUBSCRIPTION_COLUMNS, decorate=_subscription_rows,
        context={"noun": "subscription", "help": HELP, "state_prefix": "sub-",
                 "quick_states": SubscriptionState.values},
    )  # fmt: skip


def _subscription_rows(rows):
    return [
        subscription_row(
            id=row["id"], dataset=row["dataset__name"], kind=row["dataset__kind"], n_files=row["dataset__n_files"],
            size=row["dataset__bytes"], site=row["site__name"], fields=row,
            files_present=row["files_present"], bytes_present=row["bytes_present"],
        )
        for row in rows
    ]  # fmt: skip


def subscription_row(*, id, dataset, kind, n_files, size, site, fields, files_present, bytes_present):
    """A subscription as the pages show it: the API's fields (datasets.flow_api.SubscriptionSerializer) with the
    meaning of its state and what the site holds of the dataset."""
    return {
        "id": id, "dataset": dataset, "dataset_kind": kind, "site": site,
        **{name: fields[name] for name in ("owner_name", "activity", "priority", "state", "reason", "created_at",
                                           "modified_at", "evaluated_at", "stuck_at", "done_at")},
        "state_text": SubscriptionState(fields["state"]).label,
        "progress": selectors.progress(kind=kind, files_wanted=n_files, bytes_wanted=size,
                                       files_present=files_present, bytes_present=bytes_present),
    }  # fmt: skip


def subscription_detail(request, pk):
    try:
        _refuse_parameters(request.GET)
        subscription = selectors.subscription_detail(pk=pk)
    except ServiceError as error:
        return error_page(request, error)
    dataset, site = subscription.dataset, subscription.site
    fields = {name: getattr(subscription, name) for name in SUBSCRIPTION_COLUMNS if "__" not in name}
    row = subscription_row(
        id=subscription.pk, dataset=dataset.name, kind=dataset.kind, n_files=dataset.n_files, size=dataset.bytes,
        site=site.name, fields=fields, files_present=subscription.files_present,
        bytes_present=subscription.bytes_present,
    )  # fmt: skip
    dataset_ids = selectors.subscribed_dataset_ids(subscription)
    since = timezone.now() - timedelta(days=selectors.CHANNEL_ERROR_DAYS)
    members = None
    if dataset.kind == DatasetKind.CONTAINER:
        member_rows, total = selectors.member_progress(dataset_ids=dataset_ids, site_id=site.pk)
        members = {"rows": member_rows, "total": total}
    data = {
        "subscription": row,
        "transfers": selectors.transfer_counts(site_id=site.pk, dataset_ids=dataset_ids),
        "recent_failures": selectors.transfer_failures(site_id=site.pk, dataset_ids=dataset_ids),
        "channel_errors": {"since": since, "rows": selectors.channel_errors(destination_id=site.pk, since=since)},
        "members": members,
    }
    context = {
        "subscription": subscription, "row": row, "data": data, "help": HELP, "channel_days": selectors.CHANNEL_ERROR_DAYS,
        "max_failures": selectors.RECENT_FAILURES,
        "transfer_links": _transfer_links(dataset, site, members, data["transfers"]),
    }  # fmt: skip
    return render_page(request, "dataflow/subscription_detail.html", context, json_data=data)


def _refuse_parameters(params):
    unknown = sorted(set(params) - {"json"})
    if unknown:
        raise InvalidInput(f"unknown parameter {', '.join(unknown)}; this page takes none")


def _transfer_links(dataset, site, members, counts):
    """[(state, n, link to those transfers in /transfers/ or None)] of a subscription's transfers."""
    if members is None:
        names = [dataset.name]
    elif members["total"] <= min(MAX_LINKED_MEMBERS, len(members["rows"])):
        names = [member["name"] for member in members["rows"]]
    else:
        names = []
    links = []
    for state, n in counts.items():
        query = {"dataset": "|".join(names), "destination": site.name, "state": state}
        links.append((state, n, "/transfers/?" + urlencode(query) if names and n else None))
    return links


# ---------------------------------------------------------------- transfers


def transfer_list(request):
    return list_page(
        request, "dataflow/transfer_list.html", filterset_class=TransferPageFilterSet,
        queryset=TransferRequest.objects.all(), columns=TRANSFER_COLUMNS, decorate=_transfer_rows,
        context={"noun": "transfer", "help": HELP, "state_prefix": "xfer-", "quick_states": TransferState.values},
    )  # fmt: skip


def _transfer_rows(rows):
    """The API's fields (datasets.flow_api.TransferSerializer) and the request's age: requested -> finished
    (or -> now while it is live)."""
    now = timezone.now()
    result = []
    for row in rows:
        end = row["finished_at"] or now
        result.append({
            "id": row["id"], "lfn": row["file__lfn"], "fsize": row["file__fsize"], "source": row["source__name"],
            "destination": row["destination__name"],
            **{name: row[name] for name in ("activity", "priority", "state", "attempts", "error", "tool", "bytes",
                                            "requested_at", "next_attempt_at", "submitted_at", "finished_at",
                                            "seconds")},
            "age_s": round((end - row["requested_at"]).total_seconds()),
            "retry_in_s": _retry_in(row, now),
        })  # fmt: skip
    return result


def _retry_in(row, now):
    """Seconds until a queued request that failed an attempt may be tried again (None when due or not queued)."""
    if row["state"] != TransferState.QUEUED or not row["attempts"] or row["next_attempt_at"] <= now:
        return None
    return round((row["next_attempt_at"] - now).total_seconds())


# ---------------------------------------------------------------- channels and throughput


def channel_list(request):
    """Per channel (source -> destination) over the window's hours: files, bytes, failures, throughput, last error;
    and the throughput plot of the same hour rows."""
    try:
        filterset = valid_filterset(ChannelPageFilterSet, request.GET, TransferChannelStat.objects.all())
        window = _bounded(filterset.window)
    except ServiceError as error:
        return error_page(request, error)
    stats = filterset.qs
    totals = selectors.channel_totals(stats)
    for row in totals:
        row["failure_pct"] = None if row["failure_fraction"] is None else round(100 * row["failure_fraction"], 1)
    measure = filterset.form.cleaned_data.get("measure") or "bytes"
    split = filterset.form.cleaned_data.get("split") or "destination"
    bins = _bins(window)
    plot = _throughput(stats, bins, measure, split)
    given = {name: value for name, value in request.GET.items() if name in filterset.filters and value}
    listing = Listing(
        filters=given, window=window, facets=_channel_facets(totals), facets_truncated={}, total=len(totals),
        total_more_than=None, rows=totals, sortby="source", sort_options=[], limit=len(totals), next_url=None,
        querystring=urlencode({name: value for name, value in request.GET.items() if name != "json"}),
    )  # fmt: skip
    data = {**listing.envelope(), "plot": plot}
    shown = _busiest_channels(totals)
    context = {
        "listing": listing, "rows": shown, "not_shown": len(totals) - len(shown), "data": data, "noun": "channel",
        "help": HELP,
        "figure": plots.stacked_time_histogram(
            bins.edges(), {series["name"]: series["values"] for series in plot["series"]}, width=bins.width,
            title=PLOT_TITLES[measure].format(bin=bins.label) + f", by {split}", y_title=plot["unit"],
        ),
        "measure": measure, "split": split, "measures": PLOT_TITLES, "splits": ("destination", "source", "channel"),
        "window_qs": urlencode(_window_params(request.GET, window)),
        "max_days": CHANNEL_MAX_DAYS, "plot_series": PLOT_SERIES,
    }  # fmt: skip
    return render_page(request, "dataflow/channels.html", context, json_data=data)


def _busiest_channels(totals):
    """The CHANNELS_SHOWN busiest channels (files done + failed attempts), still by source then destination.

    Three weeks of a full mesh is ~2,000 channels: as table rows that is over 1 MB of HTML and most of
    the page's time. The facets and the JSON twin keep every channel."""
    if len(totals) <= CHANNELS_SHOWN:
        return totals
    busiest = sorted(totals, key=lambda row: -(row["files_done"] + row["files_failed"]))[:CHANNELS_SHOWN]
    return sorted(busiest, key=lambda row: (row["source"], row["destination"]))


def _bounded(window):
    if window.start is None:
        raise InvalidInput("give hours=, days= or date_from=: this page sums a bounded window of hours")
    span = (window.end or timezone.now()) - window.start
    if span > timedelta(days=CHANNEL_MAX_DAYS, hours=1):
        raise InvalidInput(f"the window may span at most {CHANNEL_MAX_DAYS} days on this page")
    return window


def _window_params(params, window):
    """The window to carry into links to the transfer list: the one given, else the hours of the default."""
    given = {name: params[name] for name in WINDOW_PARAMS if params.get(name)}
    return given or {"hours": f"{window.hours:g}"}


def _bins(window):
    """Hour bins (the rows' own grain) up to 3 days, days beyond."""
    end = window.end or timezone.now()
    bins = plots.TimeBins.for_span(window.start, end)
    return plots.TimeBins("hour", window.start, end) if bins.unit == "10min" else bins


def _throughput(stats, bins, measure, split):
    rows = selectors.throughput_rows(stats, bin_expressions=bins.expressions("hour"), measure=measure, split=split)
    series = plots.series_over_bins(rows, bins, name_of=lambda row: row["name"], top=PLOT_SERIES)
    seconds = bins.width.total_seconds()
    if measure == "bytes":  # bytes moved in the bin / its length: the mean rate
        series = {name: [round(n / seconds, 1) for n in values] for name, values in series.items()}
    unit = {"bytes": "bytes/s", "files": f"files per {bins.label}", "failures": f"failures per {bins.label}"}[measure]
    return {
        "measure": measure,
        "split": split,
        "unit": unit,
        "bins": bins.as_dict(),
        "edges": bins.edges(),
        "series": [{"name": name, "values": values} for name, values in series.items()],
    }


def _channel_facets(totals):
    """Sources and destinations with the files each moved or failed (done + failed attempts) in the window."""
    facets = {}
    for name in ("source", "destination"):
        sums = {}
        for row in totals:
            sums[row[name]] = sums.get(row[name], 0) + row["files_done"] + row["files_failed"]
        facets[name] = sorted(sums.items(), key=lambda pair: (-pair[1], pair[0]))[:FACET_VALUES_SHOWN]
    return facets

"""Dataset browser pages: the browser (categories, facets, residency), a dataset, a file, the blocks summary.

Each page has its JSON twin built from the same data (pandamon.pages.render_page).
"""

from urllib.parse import urlencode

from pandamon.errors import InvalidInput, NotFound, ServiceError
from pandamon.listing import Listing, parse_limit, run_listing, valid_filterset
from pandamon.pages import error_page, render_page

from . import selectors
from .choices import DatasetKind, DatasetState, ReplicaState
from .filters import BlockFilterSet, DatasetFileFilterSet, DatasetFilterSet
from .naming import FIELDS, is_valid_name

LIST_COLUMNS = ("name", "kind", "state", "category", "n_files", "bytes", "latest_version", "owner__username",
                "created_at", "modified_at")  # fmt: skip
FILE_COLUMNS = ("id", "lfn", "guid", "fsize", "adler32", "events", "created_at")
DATASET_FIELDS = ("name", "duid", "kind", "state", "category", "latest_version", "n_files", "bytes", "series",
                  "number", "physics", "stage", "format", "release", "created_at", "modified_at")  # fmt: skip
FILE_FIELDS = ("lfn", "guid", "fsize", "adler32", "md5", "events", "created_at")
HELP = {"kinds": DatasetKind, "states": DatasetState, "replica_states": ReplicaState,
        "min_pct": selectors.SHOWN_REPLICA_MIN_PCT}  # fmt: skip


def dataset_list(request):
    """The browser: category chips over the whole catalog, then the grammar's listing of datasets."""
    try:
        listing = run_listing(
            request, filterset_class=DatasetFilterSet, queryset=selectors.browsable_datasets(), columns=LIST_COLUMNS
        )
    except ServiceError as error:
        return error_page(request, error)
    listing.filters = _given(listing.filters)
    categories = selectors.category_counts()
    data = {
        **listing.envelope(),
        "categories": [{"name": name, "description": text, "count": n} for name, text, n in categories],
    }
    context = {"listing": listing, "rows": listing.rows, "data": data, "categories": categories,
               "sites_by_cloud": selectors.sites_by_cloud(), "noun": "dataset", "help": HELP}  # fmt: skip
    return render_page(request, "datasets/dataset_list.html", context, json_data=data)


def _given(filters):
    """The filters with a value: the site chooser's empty choice ("any site") filters nothing."""
    return {name: value for name, value in filters.items() if value}


def dataset_detail(request, name):
    try:
        dataset = _dataset(name)
        version = _version(request.GET.get("version"), dataset)
        show_all = _flag(request.GET.get("allreplicas"), "allreplicas")
        files = _file_listing(request, dataset, version)
    except ServiceError as error:
        return error_page(request, error)
    min_pct = 0 if show_all else selectors.SHOWN_REPLICA_MIN_PCT
    replicas, hidden = selectors.replica_rows(dataset=dataset, min_pct=min_pct)
    members, n_members = selectors.member_rows(container=dataset) if dataset.kind == DatasetKind.CONTAINER else ([], 0)
    data = {
        "dataset": {**{field: getattr(dataset, field) for field in DATASET_FIELDS},
                    "owner": dataset.owner.username if dataset.owner else None},
        "versions": list(selectors.dataset_versions(dataset=dataset).values(
            "number", "vuid", "state", "n_files", "bytes", "created_at", "closed_at")),
        "containers": list(selectors.containers_of(dataset=dataset).values_list("name", flat=True)),
        "members": {"rows": members, "total": n_members},
        "replicas": {"min_pct": min_pct, "rows": replicas, "hidden": hidden},
        "files": files.envelope() if files else None,
        "files_version": version,
        "jobs": {"column": selectors.job_name_column(dataset), "rows": selectors.jobs_of_dataset(dataset=dataset)},
    }  # fmt: skip
    context = {"dataset": dataset, "data": data, "listing": files, "version": version, "show_all": show_all,
               "name_fields": [(field, getattr(dataset, field)) for field in FIELDS], "help": HELP}  # fmt: skip
    return render_page(request, "datasets/dataset_detail.html", context, json_data=data)


def _dataset(name):
    # DQ2 users write containers with a trailing slash; the catalog stores the bare name.
    name = name.removesuffix("/")
    if not is_valid_name(name):
        raise NotFound(f"no dataset named {name[:120]!r}: not a dataset name (letters, digits, _ - . : +)")
    return selectors.dataset_detail(name=name)


def _version(raw, dataset):
    """The version whose files are listed: ?version=N, by default the latest (None for containers)."""
    if dataset.kind == DatasetKind.CONTAINER:
        if raw:
            raise InvalidInput(f"{dataset.name} is a container: it has no versions")
        return None
    if raw in (None, ""):
        return dataset.latest_version
    if not raw.isdigit() or not 1 <= int(raw) <= dataset.latest_version:
        raise InvalidInput(f"version must be a number from 1 to {dataset.latest_version}, got {raw[:20]!r}")
    return int(raw)


def _flag(raw, name):
    if raw in (None, "", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise InvalidInput(f"{name} must be 1 or 0, got {raw[:20]!r}")


def _file_listing(request, dataset, version):
    """One keyset page of the version's files by LFN, each with the sites holding a replica."""
    if version is None:
        return None
    listing = run_listing(
        request, filterset_class=DatasetFileFilterSet, facets=False, columns=FILE_COLUMNS,
        queryset=selectors.version_files(dataset=dataset, version=version),
    )  # fmt: skip
    sites = selectors.replica_sites_of(file_ids=[row["id"] for row in listing.rows])
    for row in listing.rows:
        row["replicas"] = [{"site": site, "state": state} for site, state in sites.get(row.pop("id"), ())]
    return listing


def file_detail(request, lfn):
    try:
        found = selectors.file_detail(lfn=lfn)
    except ServiceError as error:
        return error_page(request, error)
    origin = found.origin_dataset
    data = {
        "file": {field: getattr(found, field) for field in FILE_FIELDS},
        "origin_dataset": origin.name if origin and origin.erased_at is None else None,
        "datasets": list(selectors.datasets_of_file(file=found)),
        "replicas": list(selectors.replicas_of_file(file=found)),
        "jobs": selectors.jobs_of_file(lfn=found.lfn),
    }
    context = {"file": found, "data": data, "help": HELP}
    return render_page(request, "datasets/file_detail.html", context, json_data=data)


def block_list(request):
    """Summaries: blocks: the datablocks read by jobs changed in the window, where and in which states."""
    try:
        filterset = valid_filterset(BlockFilterSet, request.GET, selectors.input_block_files())
        limit = parse_limit(request.GET.get("limit"))
    except ServiceError as error:
        return error_page(request, error)
    rows, total, facets = selectors.block_summary(
        filterset.qs.order_by(), facet_lookups=filterset.facet_lookups(), limit=limit
    )
    listing = Listing(
        filters=_given({name: value for name, value in request.GET.items() if name in filterset.filters}),
        window=filterset.window, facets=facets, facets_truncated={}, total=total, total_more_than=None, rows=rows,
        sortby="-jobs", sort_options=[], limit=limit, next_url=None,
        querystring=urlencode({name: value for name, value in request.GET.items() if name != "json"}),
    )  # fmt: skip
    data = listing.envelope()
    context = {"listing": listing, "rows": rows, "data": data, "noun": "block", "shown": len(rows)}
    return render_page(request, "datasets/block_list.html", context, json_data=data)

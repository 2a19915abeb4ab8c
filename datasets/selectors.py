"""Reads of the catalog: datasets, their files per version, replicas and completeness."""

import re
from collections import Counter

from django.db.models import Case, Count, F, Q, Value, When
from django.db.models.functions import Concat

from jobs.choices import FileType
from jobs.models import Job, JobFile
from pandamon.errors import InvalidInput, NotFound
from pandamon.grammar import wildcard_q
from pandamon.listing import FACET_VALUES_SHOWN, merge_not_specified
from sites.models import Site

from .choices import DatasetKind
from .models import (
    ContainerMember,
    Dataset,
    DatasetFile,
    DatasetReplica,
    DatasetVersion,
    File,
    FileReplica,
)
from .naming import CATEGORIES, FIELDS

WILDCARD = re.compile(r"^[A-Za-z0-9_\-.:+*]{1,255}$")


def name_filter(pattern, field="name"):
    """A DQ2 name pattern with `*` wildcards as an ORM filter (no regex reaches the database)."""
    if not WILDCARD.match(pattern):
        raise InvalidInput(f"{pattern!r} is not a name pattern (letters, digits, _ - . : + and * wildcards)")
    return wildcard_q(field, pattern)


def dataset_list(*, pattern=None, category=None, fields=None, kind=None):
    queryset = Dataset.objects.filter(erased_at__isnull=True).order_by("name")
    if pattern:
        queryset = queryset.filter(name_filter(pattern))
    if category:
        queryset = queryset.filter(category=category)
    if kind:
        queryset = queryset.filter(kind=kind)
    for name, value in (fields or {}).items():
        if name not in FIELDS:
            raise InvalidInput(f"unknown name field {name!r}; fields are {', '.join(FIELDS)}")
        queryset = queryset.filter(**{name: value})
    return queryset


def dataset_detail(*, name):
    dataset = Dataset.objects.filter(name=name, erased_at__isnull=True).select_related("owner").first()
    if dataset is None:
        raise NotFound(f"no dataset named {name}")
    return dataset


def files_in_dataset(*, dataset, version=None):
    """The files of a version (default: the latest), as DatasetFile rows with their File, by LFN."""
    return _version_contents(dataset, version).select_related("file").order_by("file__lfn")


def file_rows_in_dataset(*, dataset, version=None):
    """listFilesInDataset as plain rows (dicts with FILE_ROW keys), by LFN: what the API pages and streams."""
    return _version_contents(dataset, version).values("version_added", **FILE_ROW).order_by("lfn")


# The LFN as an expression, so ordering and paging by it reads the dataset's memberships and sorts
# them, rather than walking the whole catalog's LFN index (see version_files).
FILE_ROW = {
    "lfn": Concat("file__lfn", Value("")),
    **{name: F(f"file__{name}") for name in ("guid", "fsize", "adler32", "md5", "events")},
}


def _version_contents(dataset, version):
    version = version or dataset.latest_version
    if not 1 <= version <= dataset.latest_version:
        raise NotFound(f"{dataset.name} has versions 1 to {dataset.latest_version}, not {version}")
    return DatasetFile.objects.filter(dataset=dataset, version_added__lte=version)


def dataset_replicas(*, dataset):
    """Sites holding the dataset, with how complete each copy is."""
    return DatasetReplica.objects.filter(dataset=dataset).select_related("site", "site__cloud").order_by("site__name")


def dataset_replica_rows(queryset):
    """Dataset replicas as plain rows: what listDatasetReplicas and listDatasetsInSite answer."""
    return queryset.values(
        "files_present", "bytes_present", "modified_at", dataset_name=F("dataset__name"),
        n_files=F("dataset__n_files"), site_name=F("site__name"), cloud=F("site__cloud__name"),
        storage_endpoint=F("site__storage_endpoint"),
    )  # fmt: skip


def datasets_in_site(*, site_name, complete=None):
    """listDatasetsInSite: the site's dataset replicas, complete or incomplete."""
    queryset = DatasetReplica.objects.filter(site__name=site_name, dataset__erased_at__isnull=True).select_related(
        "dataset"
    )
    if complete is True:
        queryset = queryset.filter(files_present__gte=F("dataset__n_files"))
    elif complete is False:
        queryset = queryset.filter(files_present__lt=F("dataset__n_files"))
    return queryset.order_by("dataset__name")


def file_replica_rows(*, lfns):
    """listFileReplicas for many LFNs: rows of lfn, site_name, pfn, state, storage_endpoint."""
    return (
        FileReplica.objects.filter(file__lfn__in=lfns)
        .values(
            "pfn", "state", lfn=F("file__lfn"), site_name=F("site__name"), storage_endpoint=F("site__storage_endpoint")
        )
        .order_by("lfn", "site_name")
    )


def container_members(*, container):
    return Dataset.objects.filter(
        pk__in=ContainerMember.objects.filter(container=container).values("member_id")
    ).order_by("name")


# --- The dataset browser pages -------------------------------------------------------------

# A replica holding less than this share of the dataset is hidden on the dataset page unless asked for.
SHOWN_REPLICA_MIN_PCT = 25
MAX_MEMBERS_SHOWN = 500
MAX_JOBS_SHOWN = 50


def browsable_datasets():
    """What the dataset browser lists: every dataset not erased."""
    return Dataset.objects.filter(erased_at__isnull=True)


def category_counts():
    """[(category, description, n)] of the whole catalog, in CATEGORIES order, counted by one GROUP BY."""
    counted = dict(browsable_datasets().values_list("category").annotate(n=Count("pk")).order_by())
    names = [*CATEGORIES, *sorted(set(counted) - set(CATEGORIES))]
    return [(name, CATEGORIES.get(name, ""), counted.get(name, 0)) for name in names]


def sites_by_cloud():
    """[(cloud, [site names])] for the site chooser; sites are few (hundreds), so grouping here is cheap."""
    grouped = {}
    for cloud, site in Site.objects.order_by("cloud__name", "name").values_list("cloud__name", "name"):
        grouped.setdefault(cloud, []).append(site)
    return list(grouped.items())


def dataset_versions(*, dataset):
    return DatasetVersion.objects.filter(dataset=dataset).order_by("-number")


def containers_of(*, dataset):
    """The containers that hold `dataset` directly."""
    return Dataset.objects.filter(
        pk__in=ContainerMember.objects.filter(member=dataset).values("container_id"), erased_at__isnull=True
    ).order_by("name")


def member_rows(*, container, limit=MAX_MEMBERS_SHOWN):
    """(rows, total) of a container's members, the first `limit` by name."""
    members = container_members(container=container).filter(erased_at__isnull=True)
    rows = list(members.values("name", "kind", "state", "n_files", "bytes", "modified_at")[:limit])
    total = len(rows) if len(rows) < limit else members.count()
    return rows, total


def replica_rows(*, dataset, min_pct):
    """(rows, hidden) of the sites holding `dataset`: replicas at least `min_pct` complete by site name,
    and how many less complete ones were left out. Completeness = files_present / dataset n_files."""
    replicas = DatasetReplica.objects.filter(dataset=dataset).alias(present_x100=F("files_present") * 100)
    complete_enough = Q(present_x100__gte=dataset.n_files * min_pct)
    rows = list(
        replicas.filter(complete_enough)
        .values(
            "files_present", "bytes_present", "modified_at", site_name=F("site__name"), cloud=F("site__cloud__name")
        )
        .order_by("site_name")
    )
    for row in rows:
        row["pct"] = percent(row["files_present"], dataset.n_files)
        row["complete"] = row["files_present"] >= dataset.n_files
    hidden = replicas.exclude(complete_enough).count() if min_pct else 0
    return rows, hidden


def percent(part, whole):
    return 100.0 if not whole else round(100 * part / whole, 1)


def version_files(*, dataset, version):
    """The files of a version as a File queryset (one membership per file: no duplicate rows), with
    `lfn_order` to sort and page them by LFN.

    `lfn_order` is the LFN as an expression, so no index serves ORDER BY it: PostgreSQL then reads
    the dataset's memberships and sorts them. Ordered by the bare column, it walks the whole
    catalog's LFN index hoping to meet the dataset's files early (1 s for a 10,000-file dataset
    whose names sort late, among 1.3 million files)."""
    files = File.objects.filter(memberships__dataset=dataset, memberships__version_added__lte=version)
    return files.annotate(lfn_order=Concat("lfn", Value("")))


def replica_sites_of(*, file_ids):
    """{file id: [(site, state)]} for a page of files: one query, not one per file."""
    sites = {}
    rows = FileReplica.objects.filter(file_id__in=file_ids).values_list("file_id", "site__name", "state")
    for file_id, site, state in rows.order_by("file_id", "site__name"):
        sites.setdefault(file_id, []).append((site, state))
    return sites


def job_name_column(dataset):
    """The JobFile column that names `dataset` in jobs: one equality, so one index serves the lookup.

    Submission writes the dataset into `dataset` (and prod_dblock / destination_dblock); PanDA's
    dispatch and destination sub-blocks and production datablocks appear only in their own column."""
    if dataset.category == "dispatch":
        return "dispatch_dblock"
    if dataset.category == "destination":
        return "destination_dblock"
    if dataset.kind == DatasetKind.DATABLOCK:
        return "prod_dblock"
    return "dataset"


def jobs_of_dataset(*, dataset, limit=MAX_JOBS_SHOWN):
    """The latest jobs whose files name `dataset`, newest first: [{pandaid, type, status, site, modified}]."""
    column = job_name_column(dataset)
    return _job_rows(JobFile.objects.filter(**{column: dataset.name}), limit)


def jobs_of_file(*, lfn, limit=MAX_JOBS_SHOWN):
    """The latest jobs that read or wrote the file (JobFile.lfn is indexed)."""
    return _job_rows(JobFile.objects.filter(lfn=lfn), limit)


def _job_rows(job_files, limit):
    """The latest `limit` (job, file type) pairs of `job_files` with how many files, then the jobs' state and site."""
    pairs = list(
        job_files.values("type", pandaid=F("job_id")).annotate(files=Count("pk")).order_by("-pandaid", "type")[:limit]
    )
    jobs = Job.objects.filter(pk__in={pair["pandaid"] for pair in pairs}).values_list(
        "pandaid", "status", "computing_site__name", "modification_time"
    )
    by_id = {pandaid: {"job_status": status, "site": site, "modified": at} for pandaid, status, site, at in jobs}
    return [{**pair, **by_id.get(pair["pandaid"], {})} for pair in pairs]


def file_detail(*, lfn):
    found = File.objects.filter(lfn=lfn).select_related("origin_dataset").first()
    if found is None:
        raise NotFound(f"no file named {lfn}")
    return found


def datasets_of_file(*, file):
    """The datasets holding the file, with the version that added it."""
    return (
        DatasetFile.objects.filter(file=file, dataset__erased_at__isnull=True)
        .values("version_added", name=F("dataset__name"), kind=F("dataset__kind"), state=F("dataset__state"))
        .order_by("name")
    )


def replicas_of_file(*, file):
    return (
        FileReplica.objects.filter(file=file)
        .values("pfn", "state", "created_at", site_name=F("site__name"), cloud=F("site__cloud__name"))
        .order_by("site_name")
    )


# --- Blocks: the datablocks jobs are processing ---------------------------------------------


def input_block_files():
    """Input JobFiles annotated with `block`: their production datablock, else their dataset."""
    block = Case(When(prod_dblock="", then=F("dataset")), default=F("prod_dblock"))
    return JobFile.objects.filter(type=FileType.INPUT).annotate(block=block).exclude(block="")


def block_summary(job_files, *, facet_lookups, limit):
    """(rows, total, facets) of the blocks read by `job_files` (from input_block_files), in ONE pass.

    One GROUP BY over (block, site, state and the facet columns) counts distinct jobs per cell; the
    cells are few (blocks x sites x states), so the blocks, their totals and the facets are summed
    from them here. A block's jobs are exact (a job has one site and one state); a facet counts a
    job once per block it reads (nearly always one). rows: the `limit` blocks with the most jobs."""
    lookups = list(
        dict.fromkeys(["job__computing_site__name", "job__status", *(lookup for _, lookup in facet_lookups)])
    )
    cells = job_files.values("block", *lookups).annotate(jobs=Count("job_id", distinct=True), files=Count("pk"))
    blocks, facets = {}, {name: Counter() for name, _ in facet_lookups}
    for cell in cells.order_by():
        row = blocks.setdefault(cell["block"], {"block": cell["block"], "jobs": 0, "files": 0, "states": Counter(),
                                                "sites": Counter()})  # fmt: skip
        row["jobs"] += cell["jobs"]
        row["files"] += cell["files"]
        row["states"][cell["job__status"]] += cell["jobs"]
        row["sites"][cell["job__computing_site__name"] or "(not brokered)"] += cell["jobs"]
        for name, lookup in facet_lookups:
            facets[name][cell[lookup]] += cell["jobs"]
    rows = sorted(blocks.values(), key=lambda row: (-row["jobs"], row["block"]))[:limit]
    _add_catalog_records(rows)
    for row in rows:
        row["states"] = dict(row["states"].most_common())
        row["sites"] = sorted(row["sites"].items(), key=lambda pair: (-pair[1], pair[0]))
    facets = {name: merge_not_specified(counts.items())[:FACET_VALUES_SHOWN] for name, counts in facets.items()}
    return rows, len(blocks), facets


def _add_catalog_records(rows):
    """Each block's catalog record (kind, state, files, sites holding it), or None when not registered."""
    names = [row["block"] for row in rows]
    catalog = Dataset.objects.filter(name__in=names, erased_at__isnull=True).annotate(n_sites=Count("replicas"))
    known = {d["name"]: d for d in catalog.values("name", "kind", "state", "n_files", "n_sites")}
    for row in rows:
        row["catalog"] = known.get(row["block"])

"""Bulk inserts of the catalog: on PostgreSQL one INSERT ... SELECT FROM unnest(arrays) per table.

Registrations come by the ten thousand files per call. Through bulk_create each row
costs a model instance and a compiled VALUES tuple, several times the database's own
work (bench/catalog.py measured it); passing one array per column keeps the Python
side to list building. The SQL text is constant and every value a bound parameter.
Other databases take the bulk_create path, with the same results.
"""

import uuid
from collections import namedtuple

from django.db import connection

from ..choices import ReplicaState
from ..models import DatasetFile, File, FileReplica, TransferRequest

# What the services need of a file: light rows instead of model instances.
FileRef = namedtuple("FileRef", "pk lfn fsize")
BATCH = 5000

INSERT_FILES = """
INSERT INTO datasets_file (lfn, guid, fsize, adler32, md5, events, origin_dataset_id, created_at)
SELECT t.lfn, coalesce(t.guid, gen_random_uuid()), t.fsize, t.adler32, t.md5, t.events, t.origin, now()
FROM unnest(%s::text[], %s::uuid[], %s::bigint[], %s::text[], %s::text[], %s::bigint[], %s::bigint[])
     AS t(lfn, guid, fsize, adler32, md5, events, origin)
RETURNING id, lfn, fsize
"""
INSERT_MEMBERSHIPS = """
INSERT INTO datasets_datasetfile (dataset_id, file_id, version_added)
SELECT t.dataset_id, t.file_id, t.version_added FROM unnest(%s::bigint[], %s::bigint[], %s::int[])
     AS t(dataset_id, file_id, version_added)
"""
INSERT_FILE_REPLICAS = """
INSERT INTO datasets_filereplica (file_id, site_id, pfn, state, created_at)
SELECT t.file_id, %s, t.pfn, %s, now() FROM unnest(%s::bigint[], %s::text[]) AS t(file_id, pfn)
ON CONFLICT (file_id, site_id) DO NOTHING
RETURNING file_id
"""

MARK_TRANSFERS_DONE = """
UPDATE datasets_transferrequest AS r
SET state = 'done', finished_at = %s, error = '', agent = '', source_id = t.source_id, tool = t.tool,
    seconds = t.seconds, bytes = t.bytes
FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::float8[], %s::bigint[])
     AS t(id, source_id, tool, seconds, bytes)
WHERE r.id = t.id
"""


def _postgres():
    return connection.vendor == "postgresql"


def insert_files(files):
    """Insert new files (dicts: lfn, guid or None for a new one, fsize, adler32, md5, events, origin_id).

    Returns their FileRefs.
    """
    if not files:
        return []
    if not _postgres():
        return _insert_files_orm(files)
    columns = [[f[name] for f in files] for name in ("lfn", "fsize", "adler32", "md5", "events", "origin_id")]
    guids = [str(f["guid"]) if f["guid"] else None for f in files]  # text, cast by the SQL
    with connection.cursor() as cursor:
        cursor.execute(INSERT_FILES, [columns[0], guids, *columns[1:]])
        return [FileRef(*row) for row in cursor.fetchall()]


def _insert_files_orm(files):
    created = File.objects.bulk_create(
        [
            File(lfn=f["lfn"], guid=f["guid"] or uuid.uuid4(), fsize=f["fsize"], adler32=f["adler32"], md5=f["md5"],
                 events=f["events"], origin_dataset_id=f["origin_id"])
            for f in files
        ],
        batch_size=BATCH,
    )  # fmt: skip
    if created and created[0].pk is None:  # backends that cannot return ids from a bulk insert
        created = File.objects.filter(lfn__in=[f["lfn"] for f in files])
    return [FileRef(f.pk, f.lfn, f.fsize) for f in created]


def insert_memberships(rows):
    """Insert DatasetFile rows given as (dataset_id, file_id, version_added)."""
    if not rows:
        return
    if not _postgres():
        DatasetFile.objects.bulk_create(
            [DatasetFile(dataset_id=d, file_id=f, version_added=v) for d, f, v in rows], batch_size=BATCH
        )
        return
    with connection.cursor() as cursor:
        cursor.execute(INSERT_MEMBERSHIPS, [list(column) for column in zip(*rows, strict=True)])


def insert_file_replicas(site, pfn_by_file_id):
    """Register replicas at a site ({file_id: pfn}); known ones are kept. Returns the ids of the new ones."""
    if not pfn_by_file_id:
        return []
    if not _postgres():
        return _insert_file_replicas_orm(site, pfn_by_file_id)
    ids = list(pfn_by_file_id)
    with connection.cursor() as cursor:
        cursor.execute(
            INSERT_FILE_REPLICAS,
            [site.pk, ReplicaState.AVAILABLE, ids, [pfn_by_file_id[i][:1000] for i in ids]],
        )
        return [row[0] for row in cursor.fetchall()]


def _insert_file_replicas_orm(site, pfn_by_file_id):
    present = set(
        FileReplica.objects.filter(site=site, file_id__in=list(pfn_by_file_id)).values_list("file_id", flat=True)
    )
    new = [file_id for file_id in pfn_by_file_id if file_id not in present]
    FileReplica.objects.bulk_create(
        [FileReplica(file_id=i, site=site, pfn=pfn_by_file_id[i][:1000]) for i in new],
        batch_size=BATCH,
    )
    return new


def mark_transfers_done(requests, now):
    """Record finished transfers: each request's source, tool, seconds and bytes are already set on it.

    One UPDATE ... FROM unnest(arrays) on PostgreSQL; bulk_update builds a CASE per row and field,
    which was 80 % of an agent pass of 500 files (bench/transfers.py).
    """
    if not requests:
        return
    if not _postgres():
        for request in requests:
            request.state, request.finished_at, request.error, request.agent = "done", now, "", ""
        TransferRequest.objects.bulk_update(
            requests, ["state", "finished_at", "error", "agent", "source", "tool", "seconds", "bytes"], batch_size=500
        )
        return
    columns = [[getattr(r, name) for r in requests] for name in ("pk", "source_id", "tool", "seconds", "bytes")]
    with connection.cursor() as cursor:
        cursor.execute(MARK_TRANSFERS_DONE, [now, *columns])

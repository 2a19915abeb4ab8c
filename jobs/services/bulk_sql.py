"""Bulk writes of the jobs layer on PostgreSQL: one statement for a whole brokerage batch.

Values travel as array literals ('{1,2,3}', '{"a","b"}') in one bound parameter per column and are
unnested server-side: psycopg2 turns a Python list into ARRAY[...] with one SQL constant per
element, which for a 2,000-job batch costs several times the work of the statement itself
(bench/brokerage.py). The SQL text is constant. Other databases take the ORM path, same results.
"""

from django.db import connection

from ..choices import FileType
from ..models import JobFile

SET_DISPATCH_BLOCKS = """
UPDATE jobs_jobfile AS f SET dispatch_dblock = t.name
FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS t(job_id, lfn, name)
WHERE f.job_id = t.job_id AND f.lfn = t.lfn AND f.type = %s
"""
OUTPUT_ROWS = """
SELECT id, job_id, dataset FROM jobs_jobfile
WHERE job_id = ANY(%s::bigint[]) AND type IN (%s, %s) AND dataset <> ''
"""
SET_DESTINATION_BLOCKS = """
UPDATE jobs_jobfile AS f SET destination_dblock = t.name
FROM unnest(%s::bigint[], %s::text[]) AS t(id, name)
WHERE f.id = t.id
"""


def postgres():
    return connection.vendor == "postgresql"


def int_array(values):
    """A PostgreSQL array literal of integers (None -> NULL)."""
    return "{" + ",".join("NULL" if value is None else str(int(value)) for value in values) + "}"


def text_array(values):
    """A PostgreSQL array literal of strings, each quoted (backslashes and double quotes escaped)."""
    return "{" + ",".join('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values) + "}"


def output_rows(pandaids):
    """[(job file id, pandaid, dataset), ...] of the jobs' output and log files that name a dataset."""
    if postgres():
        with connection.cursor() as cursor:
            cursor.execute(OUTPUT_ROWS, [int_array(pandaids), FileType.OUTPUT, FileType.LOG])
            return cursor.fetchall()
    rows = JobFile.objects.filter(job_id__in=list(pandaids), type__in=(FileType.OUTPUT, FileType.LOG)).exclude(
        dataset=""
    )
    return list(rows.values_list("id", "job_id", "dataset"))


def set_dispatch_blocks(rows):
    """[(pandaid, lfn, block name), ...]: the jobs' input files of that name come through that dispatch block."""
    if not rows:
        return
    if postgres():
        columns = list(zip(*rows, strict=True))
        with connection.cursor() as cursor:
            cursor.execute(SET_DISPATCH_BLOCKS, [int_array(columns[0]), text_array(columns[1]),
                                                 text_array(columns[2]), FileType.INPUT])  # fmt: skip
        return
    by_block = {}
    for pandaid, lfn, name in rows:
        by_block.setdefault(name, ([], set()))
        by_block[name][0].append(pandaid)
        by_block[name][1].add(lfn)
    for name, (pandaids, lfns) in by_block.items():
        JobFile.objects.filter(job_id__in=pandaids, type=FileType.INPUT, lfn__in=lfns).update(dispatch_dblock=name)


def set_destination_blocks(rows):
    """[(job file id, destination dataset name), ...]."""
    if not rows:
        return
    if postgres():
        ids, names = zip(*rows, strict=True)
        with connection.cursor() as cursor:
            cursor.execute(SET_DESTINATION_BLOCKS, [int_array(ids), text_array(names)])
        return
    by_name = {}
    for row_id, name in rows:
        by_name.setdefault(name, []).append(row_id)
    for name, ids in by_name.items():
        JobFile.objects.filter(pk__in=ids).update(destination_dblock=name)

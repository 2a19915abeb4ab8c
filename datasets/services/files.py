"""Files: registering many at once, refusing a known LFN with different content."""

import re
import uuid

from pandamon.errors import Conflict, InvalidInput

from ..models import File
from .bulk_sql import FileRef, insert_files

ADLER32 = re.compile(r"^[0-9a-f]{8}$")
LFN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-+:]{0,254}$")


def clean_file_spec(spec, index):
    """A validated copy of one file description: lfn, guid, fsize, adler32, md5, events."""
    where = f"files[{index}]"
    lfn = str(spec.get("lfn", ""))
    if not LFN.match(lfn):
        raise InvalidInput(f"{where}.lfn: {lfn!r} is not a valid file name (letters, digits, . _ - + :, no slash)")
    adler32 = str(spec.get("adler32", "")).lower().removeprefix("ad:")
    if not ADLER32.match(adler32):
        raise InvalidInput(f"{where}.adler32: give the adler32 checksum as 8 hex digits")
    fsize = spec.get("fsize")
    if not isinstance(fsize, int) or isinstance(fsize, bool) or fsize < 0:
        raise InvalidInput(f"{where}.fsize: give the size in bytes as a non-negative integer")
    return {
        "lfn": lfn,
        "guid": _guid(spec.get("guid"), where),
        "fsize": fsize,
        "adler32": adler32,
        "md5": str(spec.get("md5") or "")[:32],
        "events": spec.get("events"),
    }


def _guid(value, where):
    if not value:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidInput(f"{where}.guid: {value!r} is not a GUID") from None


def resolve_files(specs, *, origin_of, allow_repeats=False):
    """FileRefs (pk, lfn, fsize) of the files in `specs` (cleaned), creating the unknown ones with `origin_of(lfn)` as originating dataset.

    A known LFN must come with the same size and checksum (and GUID, if given): the
    catalog never holds two different files under one name. With `allow_repeats`, an LFN
    may be listed more than once (several datasets of one call), each time the same file.
    """
    by_lfn = {}
    for spec in specs:
        first = by_lfn.setdefault(spec["lfn"], spec)
        if first is spec:
            continue
        if not allow_repeats:
            raise InvalidInput(f"file {spec['lfn']} is listed twice")
        _check_same_spec(first, spec)
    existing = {f.lfn: f for f in File.objects.filter(lfn__in=list(by_lfn)).only("lfn", "fsize", "adler32", "guid")}
    for lfn, known in existing.items():
        _check_same_file(known, by_lfn[lfn])
    new = [{**spec, "origin_id": origin_of(lfn).pk} for lfn, spec in by_lfn.items() if lfn not in existing]
    return [FileRef(f.pk, f.lfn, f.fsize) for f in existing.values()] + insert_files(new)


def _check_same_file(known, spec):
    if known.fsize != spec["fsize"] or known.adler32 != spec["adler32"]:
        raise Conflict(
            f"file {known.lfn} already exists with another size or checksum "
            f"({known.fsize} bytes, ad:{known.adler32}; given {spec['fsize']} bytes, ad:{spec['adler32']})"
        )
    if spec["guid"] and spec["guid"] != known.guid:
        raise Conflict(f"file {known.lfn} already exists with GUID {known.guid}, not {spec['guid']}")


def _check_same_spec(first, again):
    same = all(first[key] == again[key] for key in ("fsize", "adler32"))
    if not same or (first["guid"] and again["guid"] and first["guid"] != again["guid"]):
        raise InvalidInput(f"file {first['lfn']} is listed twice with different sizes, checksums or GUIDs")

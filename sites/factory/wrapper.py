"""The pilot wrapper a batch job runs, and the pilot tarball it downloads from this server.

A site needs only a batch queue and outbound HTTP: the wrapper (POSIX sh) fetches
GET <server>/pilot/pilot.tar.gz with curl, wget or python3, unpacks it in a temporary
directory and runs `python3 -m pilot <its arguments>`. The tarball is built from this
checkout's pilot/ package (standard library only) and cached until a file changes.
"""

import gzip
import hashlib
import io
import shlex
import tarfile
import threading
from pathlib import Path

from django.conf import settings

TARBALL_PATH = "/pilot/pilot.tar.gz"
# Exit codes of the wrapper's own failures (the pilot's are 0-5 and 128+N, pilot/__main__.py).
WRAPPER_EXIT_CODES = {
    10: "wrapper: no --server URL (or $PANDA_SERVER) to download the pilot from",
    11: "wrapper: cannot download the pilot (no curl, wget or python3, or the server refused)",
    12: "wrapper: no Python 3.11+ on the worker node",
    13: "wrapper: cannot unpack the pilot",
}

WRAPPER = r"""#!/bin/sh
# PanDA monitor pilot wrapper: download the pilot from the server and run it.
# Usage: sh wrapper.sh --server URL --site SITE [pilot options]
# Needs only sh, tar, outbound HTTP (curl, wget or python3) and Python 3.11+ ($PANDA_PILOT_PYTHON).
server="${PANDA_SERVER:-}"
previous=""
for arg in "$@"; do
    case "$arg" in --server=*) server="${arg#--server=}" ;; esac
    [ "$previous" = "--server" ] && server="$arg"
    previous="$arg"
done
[ -n "$server" ] || { echo "wrapper: give --server URL" >&2; exit 10; }
server="${server%/}"
python="${PANDA_PILOT_PYTHON:-python3}"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || {
    echo "wrapper: $python is not Python 3.11+" >&2; exit 12; }
here=$(mktemp -d "${TMPDIR:-/tmp}/pandapilot.XXXXXX") || exit 13
trap 'rm -rf "$here"' EXIT
trap 'exit 143' TERM
url="$server/pilot/pilot.tar.gz"
echo "wrapper: fetching $url on $(hostname) into $here" >&2
if command -v curl >/dev/null 2>&1; then
    curl -fsS --retry 3 --max-time 300 -o "$here/pilot.tar.gz" "$url" || exit 11
elif command -v wget >/dev/null 2>&1; then
    wget -q -T 300 -O "$here/pilot.tar.gz" "$url" || exit 11
else
    "$python" -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
        "$url" "$here/pilot.tar.gz" || exit 11
fi
tar -xzf "$here/pilot.tar.gz" -C "$here" || exit 13
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" "$python" -m pilot "$@" &
child=$!
# Pass the batch system's stop signals on: the pilot reports its job before it exits.
trap 'kill -TERM "$child" 2>/dev/null' TERM INT USR1 XCPU
wait "$child"
status=$?
# A trapped signal interrupts wait: wait again for the pilot's own exit code.
while kill -0 "$child" 2>/dev/null; do wait "$child"; status=$?; done
exit "$status"
"""


def wrapper_script():
    return WRAPPER


def batch_script(spec, *, directives=()):
    """The script a batch plugin submits: directives, the pilot's identity, its arguments, the wrapper.

    The credential is not in it: the plugins pass it in the submitting command's environment."""
    exports = " ".join(f"{name}={shlex.quote(value)}" for name, value in spec.environment().items())
    lines = ["#!/bin/sh", *directives, f"export {exports}",
             "set -- " + " ".join(shlex.quote(arg) for arg in spec.pilot_arguments())]  # fmt: skip
    return "\n".join(lines) + "\n" + WRAPPER.split("\n", 1)[1]


class _TarballCache:
    """The pilot package as a tar.gz, rebuilt when a file of it changes (checked at most once a request)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._key = None
        self._data = b""

    def get(self):
        files = _pilot_files()
        key = tuple((str(path), path.stat().st_mtime_ns, path.stat().st_size) for path in files)
        with self._lock:
            if key != self._key:
                self._data, self._key = _build_tarball(files), key
            return self._data


def _pilot_root():
    return Path(settings.BASE_DIR) / "pilot"


def _pilot_files():
    return sorted(path for path in _pilot_root().rglob("*.py") if "__pycache__" not in path.parts)


def _build_tarball(files):
    """A reproducible tar.gz of the files (fixed owner and times): the same checkout gives the same bytes."""
    buffer = io.BytesIO()
    base = _pilot_root().parent
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for path in files:
            info = tarfile.TarInfo(str(path.relative_to(base)))
            data = path.read_bytes()
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


tarball_cache = _TarballCache()


def pilot_tarball():
    """(bytes, sha256 hex) of the current pilot package."""
    data = tarball_cache.get()
    return data, hashlib.sha256(data).hexdigest()

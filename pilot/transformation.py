"""Turn a job's transformation and jobPars into the command to run.

Three forms of transformation:
  * an http(s) URL: downloaded into the work directory. What arrives decides what runs:
      - a script or a program: saved as `runme` and run with jobPars as its arguments;
      - a tar archive (plain, gzip, bzip2 or xz; a user's work directory from the script
        cache): unpacked in the work directory. The script to run is the URL's fragment
        (`.../cache/<sha256>#run.sh`, run with jobPars as its arguments); without a fragment
        jobPars is the whole command, its first word a file from the archive or a program
        on the worker's PATH.
    The pilot's credential goes with the download only when the URL is on the pilot's own
    server (same scheme, host and port as --server: the script cache, /cache/<sha256>,
    serves user code to pilot credentials only). Any other host gets no credential.
  * a script starting with "#!": written to `runme`;
  * anything else: an executable name or path on the worker, used as is.
"""

import logging
import os
import shlex
import shutil
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from pilot import __version__, errors
from pilot.errors import PilotFailure

logger = logging.getLogger(__name__)

SCRIPT_NAME = "runme"
DOWNLOAD_PREFIX = ".transformation-"
DOWNLOAD_TRIES = 3
DOWNLOAD_TIMEOUT = 60.0
USER_AGENT = f"pandamon-pilot/{__version__}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A download carrying the credential must not follow a redirect: urllib would
    # forward the Authorization header to wherever the redirect points.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def build_command(
    transformation: str, job_pars: str, workdir: str, server: str | None = None, credential: str | None = None
) -> list[str]:
    """Prepare the payload in `workdir` and return the argv to run.

    server, credential: the pilot's own server and credential; the credential is sent
    with a transformation URL on that server only.
    """
    arguments = split_job_pars(job_pars)
    text = transformation.strip()
    if transformation.startswith("#!"):
        path = write_script(transformation, workdir)
    elif text.startswith(("http://", "https://")):
        return command_from_url(text, arguments, workdir, server, credential)
    elif text:
        return [text] + arguments
    else:
        raise PilotFailure(errors.TRANSFORMNOTFOUND, "job has no transformation")
    make_executable(path)
    return [path] + arguments


def split_job_pars(job_pars: str) -> list[str]:
    try:
        return shlex.split(job_pars)
    except ValueError as exc:
        raise PilotFailure(errors.UNRECOGNIZEDTRFARGUMENTS, f"cannot split jobPars {job_pars!r}: {exc}") from exc


def command_from_url(url: str, arguments: list[str], workdir: str, server: str | None, credential: str | None):
    """Download `url`; run it as a script, or unpack it and run the script it names."""
    address, fragment = urllib.parse.urldefrag(url)
    downloaded = download_transformation(address, workdir, credential if same_origin(address, server) else None)
    if _is_script(downloaded) or not tarfile.is_tarfile(downloaded):
        path = os.path.join(workdir, SCRIPT_NAME)
        os.replace(downloaded, path)
        make_executable(path)
        return [path] + arguments
    unpack_archive(downloaded, workdir)
    if fragment:
        return [sandbox_script(urllib.parse.unquote(fragment), workdir, url)] + arguments
    if not arguments:
        raise PilotFailure(
            errors.TRANSFORMNOTFOUND, f"{url} is an archive but names no script (#script) and jobPars is empty"
        )
    first = arguments[0]
    if os.path.isfile(os.path.join(workdir, first)):
        return [sandbox_script(first, workdir, url)] + arguments[1:]
    return arguments  # a program on the worker's PATH, run in the unpacked directory


def same_origin(url: str, server: str | None) -> bool:
    """True when `url` is on `server` (same scheme, host and port)."""
    if not server:
        return False
    one, two = urllib.parse.urlsplit(url), urllib.parse.urlsplit(server)
    return (one.scheme.lower(), one.hostname, _port(one)) == (two.scheme.lower(), two.hostname, _port(two))


def _port(parts: urllib.parse.SplitResult) -> int | None:
    try:
        return parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:  # a port that is not a number
        return None


def write_script(script: str, workdir: str) -> str:
    path = os.path.join(workdir, SCRIPT_NAME)
    with open(path, "w", encoding="utf-8") as target:
        target.write(script)
    return path


def download_transformation(url: str, workdir: str, credential: str | None = None) -> str:
    """Fetch `url` into a file of `workdir` (returned), retrying network trouble briefly."""
    # A name of its own: an archive's member cannot be extracted over the archive being read.
    handle, path = tempfile.mkstemp(dir=workdir, prefix=DOWNLOAD_PREFIX)
    os.close(handle)
    for attempt in range(1, DOWNLOAD_TRIES + 1):
        try:
            _download(url, path, credential)
            logger.info("downloaded transformation %s%s", url, " (with the pilot credential)" if credential else "")
            return path
        except urllib.error.HTTPError as exc:
            failure, retryable = exc, exc.code >= 500  # a 4xx will not get better
        except OSError as exc:  # URLError, timeouts, connection resets
            failure, retryable = exc, True
        if not retryable or attempt == DOWNLOAD_TRIES:
            os.unlink(path)
            raise _download_failure(url, failure) from failure
        time.sleep(attempt)
    return path  # not reached: the last attempt returns or raises


def _download(url: str, path: str, credential: str | None) -> None:
    if credential:
        request = urllib.request.Request(
            url, headers={"Authorization": f"Bearer {credential}", "User-Agent": USER_AGENT}
        )
        opener = urllib.request.build_opener(_NoRedirect())
    else:
        # A plain request: the pilot's credential is for the PanDA server only
        # and must not be sent to wherever the transformation lives.
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        opener = urllib.request.build_opener()
    with opener.open(request, timeout=DOWNLOAD_TIMEOUT) as response, open(path, "wb") as target:
        shutil.copyfileobj(response, target)


def _download_failure(url: str, exc: Exception) -> PilotFailure:
    return PilotFailure(errors.TRFDOWNLOADFAILURE, f"Transform could not be downloaded from {url}: {exc}")


def _is_script(path: str) -> bool:
    with open(path, "rb") as source:
        return source.read(2) == b"#!"


def unpack_archive(path: str, workdir: str) -> None:
    """Unpack the tar archive at `path` into `workdir`, then delete it.

    The "data" filter refuses absolute names, `..`, links leading outside the work
    directory and device files, and drops setuid bits: the archive is user input.
    """
    try:
        with tarfile.open(path) as archive:
            archive.extractall(workdir, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise PilotFailure(errors.TRFDOWNLOADFAILURE, f"cannot unpack the transformation archive: {exc}") from exc
    finally:
        if os.path.exists(path):
            os.unlink(path)
    logger.info("unpacked the transformation archive into %s", workdir)


def sandbox_script(name: str, workdir: str, url: str) -> str:
    """The path of the archive's script `name` (relative, inside workdir), made executable."""
    relative = os.path.normpath(name)
    if os.path.isabs(relative) or relative == ".." or relative.startswith(".." + os.sep):
        raise PilotFailure(errors.TRANSFORMNOTFOUND, f"script {name!r} of {url} is not a relative path")
    path = os.path.join(workdir, relative)
    if not os.path.isfile(path):
        raise PilotFailure(errors.TRANSFORMNOTFOUND, f"script {name!r} is not in the archive {url}")
    make_executable(path)
    return path


def make_executable(path: str) -> None:
    try:
        os.chmod(path, stat.S_IMODE(os.stat(path).st_mode) | 0o755)
    except OSError as exc:
        raise PilotFailure(errors.CHMODTRF, f"chmod of {path} failed: {exc}") from exc

"""Turn a job's transformation and jobPars into the command to run.

Three forms of transformation:
  * an http(s) URL: downloaded into the work directory as `runme`;
  * a script starting with "#!": written to `runme`;
  * anything else: an executable name or path on the worker, used as is.
"""

import logging
import os
import shlex
import shutil
import time
import urllib.error
import urllib.request

from pilot import errors
from pilot.errors import PilotFailure

logger = logging.getLogger(__name__)

SCRIPT_NAME = "runme"
DOWNLOAD_TRIES = 3
DOWNLOAD_TIMEOUT = 60.0


def build_command(transformation: str, job_pars: str, workdir: str) -> list[str]:
    """Prepare the executable in `workdir` and return the argv to run."""
    executable = prepare_executable(transformation, workdir)
    try:
        arguments = shlex.split(job_pars)
    except ValueError as exc:
        raise PilotFailure(errors.UNRECOGNIZEDTRFARGUMENTS, f"cannot split jobPars {job_pars!r}: {exc}") from exc
    return [executable] + arguments


def prepare_executable(transformation: str, workdir: str) -> str:
    if transformation.startswith("#!"):
        path = write_script(transformation, workdir)
    elif transformation.strip().startswith(("http://", "https://")):
        path = download_transformation(transformation.strip(), workdir)
    elif transformation.strip():
        return transformation.strip()
    else:
        raise PilotFailure(errors.TRANSFORMNOTFOUND, "job has no transformation")
    make_executable(path)
    return path


def write_script(script: str, workdir: str) -> str:
    path = os.path.join(workdir, SCRIPT_NAME)
    with open(path, "w", encoding="utf-8") as target:
        target.write(script)
    return path


def download_transformation(url: str, workdir: str) -> str:
    """Fetch `url` into `<workdir>/runme`, retrying network trouble briefly."""
    path = os.path.join(workdir, SCRIPT_NAME)
    for attempt in range(1, DOWNLOAD_TRIES + 1):
        try:
            _download(url, path)
            logger.info("downloaded transformation %s", url)
            return path
        except urllib.error.HTTPError as exc:
            failure, retryable = exc, exc.code >= 500  # a 4xx will not get better
        except OSError as exc:  # URLError, timeouts, connection resets
            failure, retryable = exc, True
        if not retryable or attempt == DOWNLOAD_TRIES:
            raise _download_failure(url, failure) from failure
        time.sleep(attempt)
    return path  # not reached: the last attempt returns or raises


def _download(url: str, path: str) -> None:
    # A plain urlopen: the pilot's credential is for the PanDA server only
    # and must not be sent to wherever the transformation lives.
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response, open(path, "wb") as target:
        shutil.copyfileobj(response, target)


def _download_failure(url: str, exc: Exception) -> PilotFailure:
    return PilotFailure(errors.TRFDOWNLOADFAILURE, f"Transform could not be downloaded from {url}: {exc}")


def make_executable(path: str) -> None:
    try:
        os.chmod(path, 0o755)
    except OSError as exc:
        raise PilotFailure(errors.CHMODTRF, f"chmod of {path} failed: {exc}") from exc

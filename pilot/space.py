"""Tell the server how full the site's storage is.

The pilot is the one component that sees the site's storage directory, so
it reports its space at start-up and after each job; the server can then
steer transfers and jobs away from a full storage element. The report is
advisory: any failure is a warning, the job's outcome never depends on it,
and it is sent once (the next job sends a fresh one anyway).
"""

import logging
import os
import shutil

from pilot.client import PandaClient
from pilot.movers import local_directory

logger = logging.getLogger(__name__)


def storage_space(storage: str | None) -> dict | None:
    """{"used_bytes", "free_bytes", "total_bytes"} of a directory storage; None otherwise."""
    path = local_directory(storage)
    if not path or not os.path.isdir(path):
        return None
    usage = shutil.disk_usage(path)
    return {"used_bytes": usage.used, "free_bytes": usage.free, "total_bytes": usage.total}


def report_storage_space(client: PandaClient, site: str, storage: str | None) -> bool:
    """Send one space report; True if the server took it. Never raises."""
    try:
        space = storage_space(storage)
        if space is None:
            return False
        answer = client.report_space(site, space)
    except Exception as exc:  # noqa: BLE001 - advisory: nothing here may stop the pilot
        logger.warning("storage space report for %s not delivered (ignored): %s", site, exc)
        return False
    logger.info(
        "reported storage space of %s: %d bytes free of %d (server: %s)",
        site,
        space["free_bytes"],
        space["total_bytes"],
        answer.get("detail") or "ok",
    )
    return True

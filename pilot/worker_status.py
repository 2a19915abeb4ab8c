"""A factory-submitted pilot's reports about itself.

A pilot factory gives each pilot an id (--pilot-id or $PANDA_PILOT_ID) and its own name
($HARVESTER_ID, as PanDA's Harvester does for pilot3). With an id the pilot

- calls updateWorkerPilotStatus when it starts (status=started) and when it exits
  (status=finished, with its exit code, the number of jobs it ran and why it stopped), as
  pilot3 does under Harvester (form fields workerID, harvesterID, status, site, node_id);
- sends the id as pilotID in every updateJob, so the server can link its jobs to it.

The reports are advisory: a few quick tries, and a failure is only logged. A pilot must
never fail a job, or hang at exit, because the factory's bookkeeping is unreachable.
"""

import logging

from pilot.client import SC_SUCCESS, ClientError, PandaClient, error_dialog
from pilot.settings import PilotSettings

logger = logging.getLogger(__name__)

METHOD = "updateWorkerPilotStatus"
REPORT_TRIES = 3
EXIT_MEANINGS = {
    0: "normal end",
    1: "unexpected pilot error",
    2: "bad command line or unreadable credential file",
    3: "server unreachable",
    4: "credential refused",
    5: "server rejected getJob",
}


class IdentifiedClient(PandaClient):
    """A PandaClient whose updateJob calls carry the pilot's id as pilotID."""

    def __init__(self, *args, pilot_id: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.pilot_id = pilot_id

    def update_job(self, form: dict, *args, **kwargs) -> dict:
        return super().update_job({**form, "pilotID": self.pilot_id}, *args, **kwargs)


def make_client(settings: PilotSettings) -> PandaClient:
    """The pilot's client: PandaClient, or IdentifiedClient when a factory gave the pilot an id."""
    options = {
        "max_tries": settings.max_tries,
        "base_delay": settings.retry_delay,
        "max_delay": settings.max_retry_delay,
        "timeout": settings.http_timeout,
    }
    if settings.pilot_id:
        return IdentifiedClient(settings.server, settings.credential, pilot_id=settings.pilot_id, **options)
    return PandaClient(settings.server, settings.credential, **options)


def exit_meaning(code: int) -> str:
    if code > 128:
        return f"stopped by signal {code - 128}"
    return EXIT_MEANINGS.get(code, f"exit code {code}")


class WorkerStatus:
    """Sends the start and end reports of one pilot (nothing when it has no id)."""

    def __init__(self, settings: PilotSettings, client: PandaClient):
        self.settings = settings
        self.client = client

    def started(self) -> bool:
        return self._send("started")

    def finished(self, exit_code: int, jobs_run: int) -> bool:
        return self._send("finished", exitCode=exit_code, jobsRun=jobs_run, exitReason=exit_meaning(exit_code))

    def _send(self, status: str, **extra) -> bool:
        if not self.settings.pilot_id:
            return False
        form = {"workerID": self.settings.pilot_id, "harvesterID": self.settings.factory or "", "status": status,
                "site": self.settings.site, "node_id": self.settings.node, **extra}  # fmt: skip
        try:
            answer = self.client.call(METHOD, form, tries=REPORT_TRIES)
        except ClientError as exc:
            logger.warning("worker status %s not delivered: %s", status, exc)
            return False
        if answer.get("StatusCode") != SC_SUCCESS:
            logger.warning("worker status %s refused: %s", status, error_dialog(answer))
            return False
        logger.info("worker status %s reported for pilot %s", status, self.settings.pilot_id)
        return True

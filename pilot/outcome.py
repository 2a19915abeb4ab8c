"""How a job ended, and the final updateJob fields that say so."""

from dataclasses import dataclass
from datetime import UTC, datetime

from pilot.errors import truncate_diag
from pilot.payload import PayloadResult
from pilot.stageout import OutputReport

PANDA_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def utc_now() -> datetime:
    return datetime.now(UTC)


def panda_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(PANDA_TIME_FORMAT)


@dataclass
class JobOutcome:
    state: str = "finished"
    trans_exit_code: int = 0
    exe_error_code: int = 0
    exe_error_diag: str = ""
    pilot_error_code: int = 0
    pilot_error_diag: str = ""

    @property
    def failed(self) -> bool:
        return self.state == "failed"

    def fail_pilot(self, code: int, diag: str) -> None:
        """Record a pilot-side failure. The first one is reported, as in
        pilot3: later errors (say, the log stage-out) are consequences."""
        self.state = "failed"
        if not self.pilot_error_code:
            self.pilot_error_code = code
            self.pilot_error_diag = truncate_diag(diag)

    def record_exit(self, exit_code: int, stderr_line: str) -> None:
        """Record the payload's exit code; non-zero fails the job."""
        self.trans_exit_code = exit_code
        if exit_code != 0:
            self.state = "failed"
            self.exe_error_code = exit_code
            self.exe_error_diag = truncate_diag(stderr_line)


def final_update_fields(
    outcome: JobOutcome, result: PayloadResult | None, report: OutputReport, pilot_log: str, job_start: datetime
) -> dict:
    """The extra updateJob fields of the final (finished/failed) update."""
    return {
        "transExitCode": outcome.trans_exit_code,
        "exeErrorCode": outcome.exe_error_code,
        "exeErrorDiag": outcome.exe_error_diag,
        "pilotErrorCode": outcome.pilot_error_code,
        "pilotErrorDiag": outcome.pilot_error_diag,
        "cpuConsumptionTime": round(result.cpu_seconds) if result else 0,
        "cpuConsumptionUnit": "s",
        "maxRSS": result.max_rss_kb if result else 0,
        "startTime": panda_time(result.start_time if result else job_start),
        "endTime": panda_time(utc_now()),
        "nEvents": 0,
        "pilotLog": pilot_log,
        "xml": report.to_xml(),
    }

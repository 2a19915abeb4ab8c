"""Everything the command line decides, in one immutable object."""

import socket
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PilotSettings:
    server: str
    site: str
    credential: str | None = field(default=None, repr=False)  # never logged
    once: bool = False
    max_jobs: int | None = None
    workdir: str = "."
    heartbeat: float = 1800.0  # pilot3's default.cfg heartbeat period
    idle_sleep: float = 60.0
    storage_dir: str | None = None  # a directory, file:// or http(s):// URL (pilot/movers.py)
    node: str = field(default_factory=socket.gethostname)
    prod_source_label: str | None = None
    keep_workdir: bool = False
    max_tries: int = 8
    retry_delay: float = 1.0
    max_retry_delay: float = 60.0
    http_timeout: float = 60.0
    kill_grace: float = 10.0  # pilot3 waits 10 s between SIGTERM and SIGKILL
    stage_timeout: float = 1800.0  # per file, stage-in and stage-out
    recovery: bool = True  # finish the jobs of dead pilots found in workdir at start-up
    pilot_id: str | None = None  # given by a pilot factory: sent as pilotID and in worker status reports
    factory: str | None = None  # the factory's name (pilot3's HARVESTER_ID)
    max_idle_polls: int | None = None  # leave after this many getJob calls in a row found no job
    looping_timeout: float = 7200.0  # pilot3's looping_limit_default: kill a payload whose workdir is idle this long
    debug_heartbeat: float = 60.0  # pilot3's heartbeat period in debug mode
    # Public keys (id -> pilot.signature.PublicKey) jobs must be signed with; None: no check (docs/job-signing.md).
    signing_keys: dict | None = field(default=None, repr=False)

"""Command line: `python -m pilot --server URL --site NAME [options]`.

Exit codes:
  0    normal end (including "no job" with --once)
  1    unexpected pilot error
  2    bad command line, unreadable credential file or signing key file
  3    server unreachable after the configured retries (or, with --fetch-signing-key, its keys)
  4    credential refused by the server
  5    the server rejected getJob as malformed, or does not speak the protocol
  128+N  stopped by signal N (after reporting the running job)
"""

import argparse
import dataclasses
import logging
import os
import socket
import sys
import time

from pilot import __version__, signature
from pilot.client import BadRequest, CredentialRefused, ProtocolError, ServerUnreachable
from pilot.loop import Pilot
from pilot.movers import normalize_location
from pilot.settings import PilotSettings
from pilot.worker_status import WorkerStatus, make_client

EXIT_OK = 0
EXIT_PILOT_ERROR = 1
EXIT_USAGE = 2
EXIT_SERVER_UNREACHABLE = 3
EXIT_CREDENTIAL_REFUSED = 4
EXIT_PROTOCOL_ERROR = 5
TOKEN_ENVIRONMENT_VARIABLE = "PANDA_PILOT_TOKEN"
PILOT_ID_VARIABLE = "PANDA_PILOT_ID"
FACTORY_VARIABLE = "HARVESTER_ID"  # the name pilot3 reads its factory (Harvester) from

logger = logging.getLogger("pilot")


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pilot", description=("PanDA-style pilot: fetch jobs for a site, run them, report back.")
    )
    for add_options in (
        _server_options,
        _loop_options,
        _work_options,
        _node_options,
        _http_options,
        _control_options,
        _signing_options,
    ):
        add_options(parser)
    parser.add_argument("--version", action="version", version=__version__)
    return parser


def _server_options(parser):
    """Where the server is, and the pilot credential."""
    parser.add_argument("--server", required=True, help="server base URL, e.g. http://host:8000")
    parser.add_argument("--site", required=True, help="computing site (PanDA queue) name")
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--credential", help="bearer token (visible in ps: prefer the others)")
    secret.add_argument(
        "--credential-file", help=f"file holding the bearer token (default: ${TOKEN_ENVIRONMENT_VARIABLE})"
    )


def _loop_options(parser):
    """How many jobs to run, and the id a pilot factory gave this pilot."""
    parser.add_argument("--once", action="store_true", help="one getJob, run that job, exit")
    parser.add_argument("--max-jobs", type=positive_int, help="exit after running N jobs")
    parser.add_argument(
        "--max-idle-polls", type=positive_int, help="exit after N getJob calls in a row got no job (default: never)"
    )
    parser.add_argument(
        "--pilot-id",
        default=os.environ.get(PILOT_ID_VARIABLE) or None,
        help=f"id given by a pilot factory (default: ${PILOT_ID_VARIABLE}): sent with job updates and "
        "start/end reports",
    )


def _work_options(parser):
    """Work directory, heartbeats, storage and recovery."""
    parser.add_argument("--workdir", default=os.getcwd(), help="where PandaJob_<id>/ go")
    parser.add_argument(
        "--heartbeat", type=positive_float, default=1800.0, help="seconds between heartbeats (default 1800, PanDA's)"
    )
    parser.add_argument(
        "--idle-sleep", type=positive_float, default=60.0, help="seconds to wait after 'no job' (default 60)"
    )
    parser.add_argument(
        "--storage-dir",
        help="site storage for stage-in/out: a directory, file:// or http(s):// URL (files at the catalog's "
        "deterministic place <storage>/<md5[0:2]>/<md5[2:4]>/<lfn>)",
    )
    parser.add_argument(
        "--stage-timeout",
        type=positive_float,
        default=1800.0,
        help="seconds one file's stage-in or stage-out may take (default 1800)",
    )
    parser.add_argument(
        "--no-recovery",
        action="store_true",
        help="do not finish the jobs of dead pilots found in --workdir at start-up",
    )


def _node_options(parser):
    """What the pilot says about itself and asks for; logging."""
    parser.add_argument("--node", default=socket.gethostname(), help="worker node name")
    parser.add_argument("--prod-source-label", help="ask only for jobs with this label")
    parser.add_argument("--keep-workdir", action="store_true", help="keep PandaJob_<id>/")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def _http_options(parser):
    """Retries and timeouts of server calls."""
    parser.add_argument(
        "--max-tries", type=positive_int, default=8, help="tries per server call on transient errors (final update: 2x)"
    )
    parser.add_argument(
        "--retry-delay", type=positive_float, default=1.0, help="first backoff delay in seconds; doubles up to 60"
    )
    parser.add_argument("--http-timeout", type=positive_float, default=60.0)


def _control_options(parser):
    """Stopping payloads: kill grace, the looping-job check, debug mode."""
    parser.add_argument(
        "--kill-grace", type=positive_float, default=10.0, help="seconds between SIGTERM and SIGKILL of a payload"
    )
    parser.add_argument(
        "--looping-timeout",
        type=positive_float,
        default=7200.0,
        help="kill a payload when nothing in its work directory changed for this many seconds (default 7200, "
        "PanDA's; jobs sent with loopingCheck=False are never killed as looping)",
    )
    parser.add_argument(
        "--debug-heartbeat",
        type=positive_float,
        default=60.0,
        help="seconds between heartbeats while the server has the job in debug mode (default 60, PanDA's)",
    )


def _signing_options(parser):
    """Verifying the server's job signatures (docs/job-signing.md)."""
    signing = parser.add_mutually_exclusive_group()
    signing.add_argument(
        "--signing-key",
        metavar="FILE",
        help="the server's public job signing key(s): PEM, or the JSON of /api/v1/pilot/public_keys. "
        "Every job must then carry a valid signature; others are reported failed (1390) and never run",
    )
    signing.add_argument(
        "--fetch-signing-key",
        action="store_true",
        help="as --signing-key, with the keys fetched from the server at start (weaker: the same channel as the jobs)",
    )


def read_credential(args: argparse.Namespace) -> str | None:
    """--credential, else --credential-file, else $PANDA_PILOT_TOKEN."""
    if args.credential:
        return args.credential
    if args.credential_file:
        with open(args.credential_file, encoding="utf-8") as token_file:
            return token_file.read().strip() or None
    return os.environ.get(TOKEN_ENVIRONMENT_VARIABLE) or None


def read_signing_keys(args: argparse.Namespace) -> dict | None:
    """--signing-key FILE, else the server's keys with --fetch-signing-key, else None (no check)."""
    if args.signing_key:
        keys = signature.load_key_file(args.signing_key)
    elif args.fetch_signing_key:
        keys = signature.fetch_keys(args.server, timeout=args.http_timeout)
    else:
        logger.info("job signatures are not checked (no --signing-key or --fetch-signing-key)")
        return None
    logger.info("jobs must be signed by key %s", " or ".join(sorted(keys)))
    return keys


def configure_logging(level: str) -> None:
    formatter = logging.Formatter(
        "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s", datefmt="%Y-%m-%d %H:%M:%S"
    )
    formatter.converter = time.gmtime
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def settings_from_args(args: argparse.Namespace, credential: str | None) -> PilotSettings:
    return PilotSettings(
        server=args.server,
        site=args.site,
        credential=credential,
        once=args.once,
        max_jobs=args.max_jobs,
        workdir=os.path.abspath(args.workdir),
        heartbeat=args.heartbeat,
        idle_sleep=args.idle_sleep,
        storage_dir=normalize_location(args.storage_dir) if args.storage_dir else None,
        node=args.node,
        prod_source_label=args.prod_source_label,
        keep_workdir=args.keep_workdir,
        max_tries=args.max_tries,
        retry_delay=args.retry_delay,
        http_timeout=args.http_timeout,
        kill_grace=args.kill_grace,
        stage_timeout=args.stage_timeout,
        recovery=not args.no_recovery,
        pilot_id=args.pilot_id,
        factory=os.environ.get(FACTORY_VARIABLE) or None,
        max_idle_polls=args.max_idle_polls,
        looping_timeout=args.looping_timeout,
        debug_heartbeat=args.debug_heartbeat,
    )


def run_pilot(pilot: Pilot) -> int:
    """Run the loop and turn fatal errors into exit codes."""
    try:
        pilot.run()
    except CredentialRefused as exc:
        logger.error("credential refused by the server: %s", exc)
        return EXIT_CREDENTIAL_REFUSED
    except ServerUnreachable as exc:
        logger.error("server unreachable: %s", exc)
        return EXIT_SERVER_UNREACHABLE
    except (BadRequest, ProtocolError) as exc:
        logger.error("server rejected the pilot's request: %s", exc)
        return EXIT_PROTOCOL_ERROR
    if pilot.shutdown_signal:
        return 128 + pilot.shutdown_signal
    logger.info("pilot done after %d job(s)", pilot.jobs_run)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        credential = read_credential(args)
        os.makedirs(args.workdir, exist_ok=True)
    except OSError as exc:
        logger.error("%s", exc)
        return EXIT_USAGE
    try:
        signing_keys = read_signing_keys(args)
    except (OSError, signature.BadKey) as exc:  # an unreachable server is an OSError (URLError) too
        logger.error("cannot get the job signing keys: %s", exc)
        return EXIT_SERVER_UNREACHABLE if args.fetch_signing_key else EXIT_USAGE
    settings = dataclasses.replace(settings_from_args(args, credential), signing_keys=signing_keys)
    pilot = Pilot(settings, client=make_client(settings))
    pilot.install_signal_handlers()
    worker_status = WorkerStatus(settings, pilot.client)
    worker_status.started()
    try:
        code = run_pilot(pilot)
    except Exception:  # keep the traceback in the batch log
        logger.exception("pilot failed")
        code = EXIT_PILOT_ERROR
    worker_status.finished(code, pilot.jobs_run)
    return code


if __name__ == "__main__":
    sys.exit(main())

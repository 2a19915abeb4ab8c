"""`manage.py pilot_factory`: a long-running pilot factory for the sites it serves (docs/pilot-factory.md)."""

import logging
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from pandamon.errors import ServiceError
from sites.factory import decide
from sites.factory.cycle import Factory, FactoryConfig
from sites.factory.plugins import PLUGIN_NAMES, PluginError, make_plugin
from sites.factory.services import check_factory_name
from sites.models import Site

TOKEN_VARIABLE = "PANDA_PILOT_TOKEN"


def non_negative(text):
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


class Command(BaseCommand):
    help = "Keep the given sites supplied with pilots: submit them through a plugin, watch them, record them."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="Factory name (unique; shown on /scheduler/).")
        parser.add_argument("--sites", required=True, help="Comma-separated sites this factory serves.")
        parser.add_argument("--plugin", choices=PLUGIN_NAMES, default="local")
        parser.add_argument("--server", required=True, help="URL pilots use to reach this server.")
        parser.add_argument("--credential-file", help=f"Pilot credential for the sites (default: ${TOKEN_VARIABLE}).")
        parser.add_argument("--period", type=non_negative, default=60, help="Seconds between cycles (default 60).")
        parser.add_argument("--max-queued", type=non_negative, default=10, help="Queued pilots per site (0 = no cap).")
        parser.add_argument("--max-per-cycle", type=non_negative, default=5, help="New pilots per site per cycle.")
        parser.add_argument("--max-pilots-per-site", type=non_negative, default=0,
                            help="Queued + running pilots per site (0 = only the site's max_running_jobs).")  # fmt: skip
        parser.add_argument("--max-total", type=non_negative, default=0, help="Pilots over all sites (0 = no cap).")
        parser.add_argument("--start-timeout", type=non_negative, default=20 * 60,
                            help="Seconds a started pilot may take to contact the server (default 1200).")  # fmt: skip
        parser.add_argument("--contact-timeout", type=non_negative, default=3 * 3600,
                            help="Seconds without contact before a running pilot is lost (default 10800).")  # fmt: skip
        parser.add_argument("--queue-timeout", type=non_negative, default=24 * 3600,
                            help="Seconds a pilot may wait in the batch queue (0 = forever; default 86400).")  # fmt: skip
        parser.add_argument("--pilot-args", default="--max-idle-polls 1",
                            help="Options for each pilot (default: '--max-idle-polls 1': leave when there is no job).")  # fmt: skip
        parser.add_argument("--no-site-storage", action="store_true",
                            help="Do not give pilots --storage-dir <the site's storage endpoint>.")  # fmt: skip
        parser.add_argument("--workdir", help="Pilot scripts, logs and local work areas (default: var/factory/<name>).")
        parser.add_argument("--batch-queue", default="", help="Batch queue / partition (slurm, pbs).")
        parser.add_argument("--walltime", type=non_negative, default=0, help="Batch walltime in minutes (0 = default).")
        parser.add_argument("--batch-option", action="append", default=[],
                            help="Extra sbatch/qsub argument or condor submit line (repeatable).")  # fmt: skip
        parser.add_argument("--once", action="store_true", help="Run one cycle and exit.")
        parser.add_argument("--kill-pilots-on-exit", action="store_true",
                            help="Local plugin: stop this process's pilots when the factory stops (the demo).")  # fmt: skip

    def handle(self, *args, **options):
        _configure_logging(options["verbosity"])
        config = self._config(options)
        workdir = Path(options["workdir"] or Path(settings.VAR_DIR) / "factory" / config.name)
        try:
            plugin = make_plugin(config.plugin, workdir=workdir, factory=config.name, queue=options["batch_queue"],
                                 walltime_minutes=options["walltime"], extra=options["batch_option"])  # fmt: skip
        except (PluginError, TypeError) as error:
            raise CommandError(str(error)) from None
        factory = Factory(config, plugin)
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        try:
            factory.start(pid=os.getpid())
        except ServiceError as error:
            raise CommandError(error.message) from None
        self.stdout.write(f"pilot factory {config.name}: {config.plugin} pilots for {', '.join(config.site_names)} "
                          f"every {config.period_s} s, work area {workdir}")  # fmt: skip
        try:
            factory.run(stop, once=options["once"], say=lambda text: self.stdout.write(text))
        finally:
            if options["kill_pilots_on_exit"] and hasattr(plugin, "stop_all"):
                plugin.stop_all()
            factory.stop()
            self.stdout.write(f"pilot factory {config.name} stopped")

    def _config(self, options):
        try:
            check_factory_name(options["name"])
        except ServiceError as error:
            raise CommandError(error.message) from None
        site_names = tuple(dict.fromkeys(name.strip() for name in options["sites"].split(",") if name.strip()))
        known = set(Site.objects.filter(name__in=site_names).values_list("name", flat=True))
        missing = [name for name in site_names if name not in known]
        if not site_names or missing:
            raise CommandError(f"unknown site(s): {', '.join(missing)}" if missing else "--sites names no site")
        try:
            pilot_args = tuple(shlex.split(options["pilot_args"]))
        except ValueError as error:
            raise CommandError(f"--pilot-args: {error}") from None
        if {"--server", "--site", "--pilot-id"} & set(pilot_args):
            raise CommandError("--pilot-args must not set --server, --site or --pilot-id: the factory sets them")
        caps = decide.Caps(max_queued_per_site=options["max_queued"], max_per_cycle=options["max_per_cycle"],
                           max_pilots_per_site=options["max_pilots_per_site"])  # fmt: skip
        return FactoryConfig(
            name=options["name"], site_names=site_names, plugin=options["plugin"], server=options["server"].rstrip("/"),
            token=_token(options["credential_file"]), pilot_args=pilot_args, caps=caps, max_total=options["max_total"],
            period_s=max(1, options["period"]), start_timeout_s=options["start_timeout"],
            contact_timeout_s=options["contact_timeout"], queue_timeout_s=options["queue_timeout"],
            site_storage=not options["no_site_storage"],
        )  # fmt: skip


def _token(path):
    if not path:
        return os.environ.get(TOKEN_VARIABLE) or None
    try:
        return Path(path).read_text().strip() or None
    except OSError as error:
        raise CommandError(f"--credential-file: {error}") from None


def _configure_logging(verbosity):
    log = logging.getLogger("sites.factory")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from sites.pilot_config import pilot_config


class Command(BaseCommand):
    help = (
        "Print pilot3's default.cfg with its PanDA server, queue and storage URLs pointed at this server "
        "(use it as HARVESTER_PILOT_CONFIG; docs/panda-compat.md)."
    )

    def add_arguments(self, parser):
        parser.add_argument("default_cfg", help="pilot/util/default.cfg of the pilot release the site runs.")
        parser.add_argument(
            "--server", required=True, help="This server's URL as pilots reach it, e.g. http://panda:8000"
        )

    def handle(self, *args, default_cfg, server, **options):
        if not server.startswith(("http://", "https://")):
            raise CommandError(f"--server must be an http(s) URL, got {server!r}")
        try:
            text = Path(default_cfg).read_text()
        except OSError as error:
            raise CommandError(f"cannot read {default_cfg}: {error.strerror}") from None
        self.stdout.write(pilot_config(text, server), ending="")

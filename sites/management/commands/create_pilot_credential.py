import os

from django.core.management.base import BaseCommand, CommandError

from sites.models import Site
from sites.services import create_pilot_credential


class Command(BaseCommand):
    help = "Create a pilot credential bound to the given sites and print its token (shown only once)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="A name for the credential, e.g. the factory host.")
        parser.add_argument("sites", nargs="+", help="Site names the credential may fetch jobs for.")
        parser.add_argument(
            "--output",
            help="Write the token to this new file (mode 0600, no trailing newline: PanDA's pilot3 sends "
            "a token file's content as it is) instead of printing it.",
        )

    def handle(self, *args, name, sites, output=None, **options):
        found = list(Site.objects.filter(name__in=sites))
        missing = sorted(set(sites) - {site.name for site in found})
        if missing:
            raise CommandError(f"unknown site(s): {', '.join(missing)}")
        if not output:
            self.stdout.write(create_pilot_credential(name=name, sites=found)[1])
            return
        # The file is made first, so a credential is never created that nobody can read.
        try:
            descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as error:
            raise CommandError(f"cannot create {output}: {error.strerror}") from None
        try:
            with os.fdopen(descriptor, "w") as token_file:
                token_file.write(create_pilot_credential(name=name, sites=found)[1])
        except BaseException:
            os.unlink(output)
            raise
        self.stdout.write(f"pilot credential {name!r} for {', '.join(sites)} written to {output}")

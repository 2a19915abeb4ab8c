from django.core.management.base import BaseCommand, CommandError

from sites.models import Site
from sites.services import create_pilot_credential


class Command(BaseCommand):
    help = "Create a pilot credential bound to the given sites and print its token (shown only once)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="A name for the credential, e.g. the factory host.")
        parser.add_argument("sites", nargs="+", help="Site names the credential may fetch jobs for.")

    def handle(self, *args, name, sites, **options):
        found = list(Site.objects.filter(name__in=sites))
        missing = sorted(set(sites) - {site.name for site in found})
        if missing:
            raise CommandError(f"unknown site(s): {', '.join(missing)}")
        _, token = create_pilot_credential(name=name, sites=found)
        self.stdout.write(token)

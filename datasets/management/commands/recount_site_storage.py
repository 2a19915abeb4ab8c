from django.core.management.base import BaseCommand, CommandError

from datasets.services.replicas import recount_site_totals
from sites.models import Site


class Command(BaseCommand):
    help = (
        "Recount each site's stored files and bytes (SiteReplicaTotals) from its file replicas and "
        "correct the totals that drifted, e.g. after file replicas were written by raw SQL."
    )

    def add_arguments(self, parser):
        parser.add_argument("sites", nargs="*", help="Site names (default: every site).")

    def handle(self, *args, sites, **options):
        unknown = sorted(set(sites) - set(Site.objects.filter(name__in=sites).values_list("name", flat=True)))
        if unknown:
            raise CommandError(f"no site named {unknown[0]}")
        corrected = recount_site_totals(sites or None)
        for name, (old_files, old_bytes), (files, size) in corrected:
            self.stdout.write(f"{name}: {old_files:,} files, {old_bytes:,} bytes -> {files:,} files, {size:,} bytes")
        self.stdout.write(self.style.SUCCESS(f"{len(corrected)} site(s) corrected"))

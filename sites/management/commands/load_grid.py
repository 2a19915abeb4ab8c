from django.core.management.base import BaseCommand

from sites.grid import SEED_FILE, load_grid


class Command(BaseCommand):
    help = "Create or update clouds and sites from a seed-grid.json file (default: the 2006 ATLAS grid)."

    def add_arguments(self, parser):
        parser.add_argument("--seed", default=str(SEED_FILE), help="Path of the seed JSON file.")
        parser.add_argument("--storage-root", help="Give each site a storage directory under this path.")

    def handle(self, *args, seed, storage_root, **options):
        clouds, sites = load_grid(seed, storage_root=storage_root)
        self.stdout.write(self.style.SUCCESS(f"loaded {clouds} clouds and {sites} sites"))

"""Loading the grid topology (clouds and sites) from seed-grid.json."""

import json
import zlib
from pathlib import Path

from django.db import transaction

from .choices import GridFlavour, SiteStatus
from .models import Cloud, PilotActivity, Site

SEED_FILE = Path(__file__).resolve().parent / "data" / "seed-grid.json"
STORAGE_ONLY_SUFFIXES = ("DISK", "TAPE", "NULL")
GRID_OF_CLOUD = {"USA": GridFlavour.OSG, "NL": GridFlavour.NORDIC}


def _limits_for(name, tier):
    """Deterministic but varied limits, so brokerage has real choices to make in the demo."""
    spread = zlib.crc32(name.encode()) % 4
    return {
        "max_memory_mb": (2000, 4000, 8000, 16000)[spread] if tier > 0 else 32000,
        "cores": 8 if tier <= 1 else (1, 1, 4, 8)[spread],
        "max_running_jobs": 2000 if tier <= 1 else (200, 500, 800, 1000)[spread],
        "max_disk_mb": 50000 if tier <= 1 else 20000,
    }


@transaction.atomic
def load_grid(seed_path=SEED_FILE, storage_root=None):
    """Create or update every cloud and site of the seed file; returns (clouds, sites) counts."""
    seed = json.loads(Path(seed_path).read_text())
    n_sites = 0
    for cloud_name, cloud_data in seed["clouds"].items():
        cloud, _ = Cloud.objects.update_or_create(name=cloud_name, defaults={"tier1": cloud_data["tier1"]})
        for site_name in cloud_data["sites"]:
            _upsert_site(seed, cloud, cloud_data, site_name, storage_root)
            n_sites += 1
    return len(seed["clouds"]), n_sites


def _upsert_site(seed, cloud, cloud_data, name, storage_root):
    tier = 0 if name == seed.get("tier0") else 1 if name == cloud_data["tier1"] else 2
    storage_only = name.endswith(STORAGE_ONLY_SUFFIXES)
    defaults = {
        "cloud": cloud,
        "tier": tier,
        "grid_flavour": GRID_OF_CLOUD.get(cloud.name, GridFlavour.LCG),
        "status": SiteStatus.OFFLINE if storage_only else SiteStatus.ONLINE,
        "comment": "storage endpoint only (no computing queue)" if storage_only else "",
        **_limits_for(name, tier),
    }
    if storage_root is not None:
        defaults["storage_endpoint"] = str(Path(storage_root) / name)
    site, _ = Site.objects.update_or_create(name=name, defaults=defaults)
    PilotActivity.objects.get_or_create(site=site)
    return site

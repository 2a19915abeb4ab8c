"""A small grid with real storage directories: clouds US (Tier-1 BNL, Tier-2 MWT2) and DE (Tier-1 FZK).

Files are real bytes at each site's deterministic paths, registered in the catalog as a
data operator would; the agents then move them with the real transfer tools.
"""

import os
import zlib

import pytest

from datasets.services import catalog, replicas
from datasets.services.replicas import deterministic_pfn
from datasets.services.subscriptions import evaluate_subscriptions
from datasets.services.transfers import transfer_batch
from pandamon import roles
from sites.models import Site
from tests.factories import CloudFactory, SiteFactory, UserFactory, grant_role


class Grid:
    def __init__(self, root):
        self.root = root
        self.operator = UserFactory(username="ddmops")
        grant_role(self.operator, roles.DATA_OPERATOR)
        us = CloudFactory(name="US", tier1="BNL")
        de = CloudFactory(name="DE", tier1="FZK")
        self.bnl = self.site("BNL", us, tier=1)
        self.mwt2 = self.site("MWT2", us, tier=2)
        self.fzk = self.site("FZK", de, tier=1)

    def site(self, name, cloud, tier):
        storage = self.root / name
        storage.mkdir()
        return SiteFactory(name=name, cloud=cloud, tier=tier, storage_endpoint=str(storage))

    def write(self, site, lfn, data):
        """Put bytes at the site's deterministic place for `lfn`; returns the path."""
        path = deterministic_pfn(site, lfn)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as out:
            out.write(data)
        return path

    def dataset(self, name, site, contents, kind="dataset"):
        """Register a dataset of `contents` ({lfn: bytes}) held completely at `site`."""
        catalog.register_new_dataset(user=self.operator, name=name, kind=kind, files=specs(contents))
        self.place(name, site, contents)

    def place(self, name, site, contents):
        for lfn, data in contents.items():
            self.write(site, lfn, data)
        replicas.register_file_replicas(
            user=self.operator, site_name=site.name, replicas=[{"lfn": lfn} for lfn in contents]
        )

    def refresh(self):
        for name in ("bnl", "mwt2", "fzk"):
            setattr(self, name, Site.objects.get(pk=getattr(self, name).pk))


def specs(contents):
    return [{"lfn": lfn, "fsize": len(data), "adler32": f"{zlib.adler32(data):08x}"} for lfn, data in contents.items()]


def run_agents(rounds=10):
    """Subscription and transfer passes until nothing moves (bounded)."""
    for _ in range(rounds):
        evaluated = evaluate_subscriptions()
        moved = transfer_batch(agent="test-agent")
        if not moved["claimed"] and not evaluated["evaluated"]:
            return


@pytest.fixture
def grid(db, tmp_path, settings):
    settings.PANDA = {**settings.PANDA, "TRANSFER_RETRY_SECONDS": 0, "TRANSFER_TIMEOUT_SECONDS": 10}
    return Grid(tmp_path)

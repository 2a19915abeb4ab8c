"""A small grid for the policy: clouds US (Tier-1 BNL with BNLTAPE, Tier-2s AGLT2, MWT2, SWT2), DE (Tier-1 FZK
with FZKTAPE, Tier-2 DESY) and the Tier-0 CERN, each with a storage directory."""

import pytest

from datasets.services import catalog
from pandamon import roles
from tests.dataflow.conftest import Grid, run_agents, specs  # noqa: F401 (re-exported for the tests)
from tests.factories import CloudFactory, UserFactory, grant_role


class PolicyGrid(Grid):
    def __init__(self, root):
        self.root = root
        self.operator = grant_role(UserFactory(username="ddmops"), roles.DATA_OPERATOR)
        self.user = UserFactory(username="bob")
        cern = CloudFactory(name="CERN", tier1="CERN")
        us = CloudFactory(name="US", tier1="BNL")
        de = CloudFactory(name="DE", tier1="FZK")
        self.cern = self.site("CERN", cern, tier=0)
        self.bnl = self.site("BNL", us, tier=1)
        self.bnltape = self.site("BNLTAPE", us, tier=2)
        self.aglt2 = self.site("AGLT2", us, tier=2)
        self.mwt2 = self.site("MWT2", us, tier=2)
        self.swt2 = self.site("SWT2", us, tier=2)
        self.fzk = self.site("FZK", de, tier=1)
        self.fzktape = self.site("FZKTAPE", de, tier=2)
        self.desy = self.site("DESY", de, tier=2)

    def register(self, name, contents=None, kind="dataset"):
        return catalog.register_new_dataset(user=self.operator, name=name, kind=kind, files=specs(contents or {}))


@pytest.fixture
def pgrid(db, tmp_path, settings):
    settings.PANDA = {**settings.PANDA, "TRANSFER_RETRY_SECONDS": 0, "TRANSFER_TIMEOUT_SECONDS": 10}
    return PolicyGrid(tmp_path)


def contents(prefix, n, size=100):
    return {f"{prefix}._{i:05d}.pool.root": bytes([i % 251]) * (size + i) for i in range(1, n + 1)}

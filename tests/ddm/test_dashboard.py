"""The DDM dashboard's numbers against direct counts."""

from datetime import timedelta

import pytest
from django.db.models import Sum
from django.utils import timezone

from datasets.models import DatasetReplica, DeletionProposal, Subscription, TransferChannelStat
from datasets.services import cleaning, subscriptions

from .conftest import contents, run_agents

pytestmark = pytest.mark.django_db


def test_dashboard_numbers_match_direct_counts(pgrid, client):
    for index, site in enumerate((pgrid.bnl, pgrid.bnltape, pgrid.mwt2, pgrid.fzk)):
        name = f"mc08.4{index}.v.recon.AOD.v1"
        files = contents(f"V{index}", index + 1)
        pgrid.register(name, files)
        pgrid.place(name, site, files)
    subscriptions.create_subscription(user=pgrid.operator, name="mc08.40.v.recon.AOD.v1", site_name="SWT2")
    subscriptions.create_subscription(user=pgrid.operator, name="mc08.42.v.recon.AOD.v1", site_name="DESY")
    run_agents()
    # One stuck, one incomplete subscription.
    lost = "mc08.44.l.recon.AOD.v1"
    pgrid.register(lost, contents("L", 2))
    pgrid.place(lost, pgrid.fzk, contents("L", 1))
    subscriptions.create_subscription(user=pgrid.operator, name="mc08.41.v.recon.AOD.v1", site_name="AGLT2")
    subscriptions.evaluate_subscriptions()
    Subscription.objects.filter(dataset__name="mc08.41.v.recon.AOD.v1").update(
        state="stuck", stuck_at=timezone.now(), reason="test reason"
    )
    subscriptions.create_subscription(user=pgrid.operator, name=lost, site_name="MWT2")
    DatasetReplica.objects.filter(dataset__name="mc08.43.v.recon.AOD.v1").update(
        expires_at=timezone.now() - timedelta(hours=1)
    )
    cleaning.propose()

    data = client.get("/ddm/?json").json()
    assert client.get("/ddm/").status_code == 200
    totals = {(t["tier"], t["media"]): t for t in data["volume"]["totals"]}
    assert set(totals) == {("Tier-1", "disk"), ("Tier-1", "tape"), ("Tier-2", "disk")}
    for (tier, media), total in totals.items():
        if tier == "Tier-1":
            sites = [pgrid.bnltape] if media == "tape" else [pgrid.bnl, pgrid.fzk]
        else:
            sites = [pgrid.mwt2, pgrid.swt2, pgrid.desy, pgrid.aglt2]
        direct = DatasetReplica.objects.filter(site__in=sites).aggregate(b=Sum("bytes_present"), f=Sum("files_present"))
        assert (total["bytes"], total["files"]) == (direct["b"], direct["f"])
        assert total["replicas"] == DatasetReplica.objects.filter(site__in=sites).count()
    assert sum(t["bytes"] for t in totals.values()) == DatasetReplica.objects.aggregate(b=Sum("bytes_present"))["b"]
    channel_files = sum(c["files_done"] for c in data["channels"]["rows"])
    assert channel_files == TransferChannelStat.objects.aggregate(n=Sum("files_done"))["n"]
    assert data["stuck"]["total"] == Subscription.objects.filter(state="stuck").count() == 1
    assert data["stuck"]["rows"][0]["reason"] == "test reason"
    incomplete = {(row["dataset"], row["site"]) for row in data["incomplete"]["rows"]}
    assert incomplete == {("mc08.41.v.recon.AOD.v1", "AGLT2"), (lost, "MWT2")}
    assert data["incomplete"]["total"] == 2
    proposed = DeletionProposal.objects.filter(state="proposed")
    assert data["deletions"]["proposed"] == {"n": proposed.count(),
                                             "bytes": proposed.aggregate(b=Sum("bytes"))["b"]}  # fmt: skip
    assert data["deletions"]["proposed"]["n"] == 1

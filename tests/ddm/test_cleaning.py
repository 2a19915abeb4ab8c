"""Cleaning: obsolete replicas proposed, approved by a data operator, deleted unless a claim or subscription
protects them."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from datasets.models import DatasetReplica, DeletionProposal, FileReplica
from datasets.policy_choices import ProposalState
from datasets.services import cleaning, deletion, replicas, subscriptions
from datasets.services.replicas import deterministic_pfn
from pandamon.errors import Conflict, NotFound, PermissionDenied

from .conftest import contents

pytestmark = pytest.mark.django_db


def expire(name, site):
    DatasetReplica.objects.filter(dataset__name=name, site=site).update(expires_at=timezone.now() - timedelta(hours=1))


def test_expired_replicas_wait_for_approval_then_go(pgrid, django_capture_on_commit_callbacks):
    files = contents("X", 2)
    name = "mc08.20.x.recon.AOD.v1"
    pgrid.register(name, files)
    pgrid.place(name, pgrid.mwt2, files)
    expire(name, pgrid.mwt2)
    assert deletion.reap_expired_replicas()["replicas"] == 0  # not a system dataset: never without approval
    assert cleaning.propose()["expired"] == 1
    assert cleaning.propose()["expired"] == 0  # proposed once
    proposal = DeletionProposal.objects.get()
    assert (proposal.state, proposal.reason, proposal.bytes) == (ProposalState.PROPOSED, "expired",
                                                                 sum(map(len, files.values())))  # fmt: skip
    assert cleaning.execute()["deleted"] == 0  # not approved yet
    with pytest.raises(PermissionDenied):
        cleaning.decide(user=pgrid.user, ids=[proposal.pk], approve=True)
    with pytest.raises(NotFound):
        cleaning.decide(user=pgrid.operator, ids=[proposal.pk, 999999], approve=True)
    assert DeletionProposal.objects.get().state == ProposalState.PROPOSED  # nothing half-decided
    cleaning.decide(user=pgrid.operator, ids=[proposal.pk], approve=True)
    with django_capture_on_commit_callbacks(execute=True):  # the files leave storage after commit
        assert cleaning.execute() == {"deleted": 1, "protected": 0, "files": 2}
    assert not FileReplica.objects.filter(site=pgrid.mwt2).exists()
    assert not DatasetReplica.objects.filter(site=pgrid.mwt2).exists()
    for lfn in files:
        assert not Path(deterministic_pfn(pgrid.mwt2, lfn)).exists()
    proposal.refresh_from_db()
    assert (proposal.state, proposal.decided_by) == (ProposalState.DELETED, "ddmops")
    with pytest.raises(Conflict):
        cleaning.decide(user=pgrid.operator, ids=[proposal.pk], approve=False)


def test_claims_and_subscriptions_protect_even_approved_deletions(pgrid):
    claimed, subscribed = "mc08.21.y.recon.AOD.v1", "mc08.22.z.recon.AOD.v1"
    for name in (claimed, subscribed):
        files = contents(name.split(".")[2], 1)
        pgrid.register(name, files)
        pgrid.place(name, pgrid.mwt2, files)
        expire(name, pgrid.mwt2)
    cleaning.propose()
    cleaning.decide(user=pgrid.operator, ids=list(DeletionProposal.objects.values_list("pk", flat=True)), approve=True)
    # Protected after approval, before execution.
    replicas.add_claim(user=pgrid.operator, name=claimed, site_name="MWT2", lifetime_s=3600, reason="analysis")
    subscriptions.create_subscription(user=pgrid.operator, name=subscribed, site_name="MWT2")
    assert cleaning.execute() == {"deleted": 0, "protected": 2, "files": 0}
    notes = dict(DeletionProposal.objects.values_list("dataset__name", "note"))
    assert notes[claimed].startswith("claimed by ddmops until")
    assert notes[subscribed].startswith("subscribed at the site")
    assert FileReplica.objects.filter(site=pgrid.mwt2).count() == 2
    assert cleaning.propose()["expired"] == 0  # not proposed again


def test_superseded_versions_are_proposed_where_the_new_one_is_complete(pgrid):
    old, new = "mc08.30.s.recon.AOD.v11000301", "mc08.30.s.recon.AOD.v11000302"
    old_files, new_files = contents("OLD", 1), contents("NEW", 1)
    pgrid.register(old, old_files)
    pgrid.place(old, pgrid.mwt2, old_files)
    pgrid.place(old, pgrid.swt2, old_files)
    pgrid.register(new, new_files)
    pgrid.place(new, pgrid.mwt2, new_files)  # complete at MWT2 only
    assert cleaning.propose()["superseded"] == 1
    proposal = DeletionProposal.objects.get()
    assert (proposal.dataset.name, proposal.site, proposal.detail) == (old, pgrid.mwt2, f"superseded by {new}")
    cleaning.decide(user=pgrid.operator, ids=[proposal.pk], approve=False)
    assert cleaning.propose()["superseded"] == 0  # rejected: left alone


def test_deletions_page_and_api(pgrid, client):
    from .test_policy_pages import api_as

    name = "mc08.23.w.recon.AOD.v1"
    files = contents("W", 1)
    pgrid.register(name, files)
    pgrid.place(name, pgrid.mwt2, files)
    expire(name, pgrid.mwt2)
    cleaning.propose()
    pk = DeletionProposal.objects.get().pk
    listed = client.get("/ddm/deletions/?json&state=proposed").json()
    assert listed["meta"]["total"] == 1 and listed["rows"][0]["dataset__name"] == name
    assert client.get("/ddm/deletions/").status_code == 200
    client.force_login(pgrid.user)
    assert client.post("/ddm/deletions/", {"ids": str(pk), "do": "approve"}).status_code == 403
    client.force_login(pgrid.operator)
    assert client.post("/ddm/deletions/", {"ids": "x", "do": "approve"}).status_code == 400
    answer = api_as(pgrid.operator).post("/api/v1/ddm/deletions/decide/", {"ids": [pk], "approve": True},
                                         format="json")  # fmt: skip
    assert answer.status_code == 200
    assert DeletionProposal.objects.get().state == ProposalState.APPROVED

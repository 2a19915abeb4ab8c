"""Transfer priorities by activity, and the user storage area with its own quota."""

from pathlib import Path

import pytest
from django.utils import timezone

from datasets.choices import Activity, TransferState
from datasets.flow_selectors import queue_position
from datasets.models import File, FileReplica, SiteDDMConfig, TransferRequest
from datasets.services import priorities, subscriptions, transfers, user_areas
from datasets.services.replicas import deterministic_pfn
from pandamon.errors import InvalidInput, PermissionDenied

from .conftest import contents, run_agents

pytestmark = pytest.mark.django_db


def queue(grid, activity_priorities):
    """One queued request per (activity, priority), in that order of creation; returns their ids."""
    files = contents("Q", len(activity_priorities))
    grid.register("mc08.9.q.recon.AOD.v1", files)
    now = timezone.now()
    ids = []
    for (lfn, data), (activity, priority) in zip(files.items(), activity_priorities, strict=True):
        request = TransferRequest.objects.create(
            file_id=File.objects.get(lfn=lfn).pk,
            destination=grid.mwt2, activity=activity, priority=priority, bytes=len(data), requested_at=now,
            next_attempt_at=now,
        )  # fmt: skip
        ids.append(request.pk)
    return ids


def claimed_order(batch):
    return [a.request.pk for a in transfers._claim("test", batch, timezone.now())]


def test_the_queue_is_claimed_by_activity_rank_then_priority(pgrid):
    user5, prod1, taking1, dispatch3, prod5 = queue(pgrid, [
        (Activity.USER, 5), (Activity.PRODUCTION, 1), (Activity.DATA_TAKING, 1), (Activity.DISPATCH, 3),
        (Activity.PRODUCTION, 5)])  # fmt: skip
    first_user = TransferRequest.objects.filter(pk=user5)
    assert queue_position(first_user) == 4  # everything else goes first
    assert claimed_order(1) == [taking1]  # data taking first
    assert claimed_order(1) == [dispatch3]  # then PanDA dispatch
    assert claimed_order(1) == [prod5]  # then production, by priority
    assert claimed_order(2) == sorted([prod1, user5])  # user last
    TransferRequest.objects.update(state=TransferState.QUEUED)
    priorities.set_ranks(user=pgrid.operator, changes={"user": 1, "data_taking": 2})
    assert queue_position(first_user) == 0
    assert claimed_order(1) == [user5]
    # data taking now shares rank 2 with dispatch: by priority within the rank.
    assert claimed_order(1) == [dispatch3]
    assert claimed_order(1) == [taking1]


def test_ranks_are_changed_by_data_operators_only_and_validated(pgrid):
    with pytest.raises(PermissionDenied):
        priorities.set_ranks(user=pgrid.user, changes={"user": 1})
    for bad in ({"usr": 1}, {"user": 0}, {"user": "1"}, {}, {"user": 1, "production": 99}):
        with pytest.raises(InvalidInput):
            priorities.set_ranks(user=pgrid.operator, changes=bad)
    assert priorities.ranks()["user"] == priorities.DEFAULT_RANKS["user"]  # nothing half-written


def test_user_transfers_go_to_the_user_area_within_its_quota(pgrid):
    files = contents("U", 3, size=1000)  # 1001..1003 bytes
    name = "user.bob.analysis.ntuple.v1"
    pgrid.register(name, files)
    pgrid.place(name, pgrid.bnl, files)
    SiteDDMConfig.objects.create(site=pgrid.mwt2, user_area_quota_bytes=2100)
    subscriptions.create_subscription(user=pgrid.operator, name=name, site_name="MWT2", activity="user")
    run_agents()
    at_mwt2 = dict(FileReplica.objects.filter(site=pgrid.mwt2).values_list("file__lfn", "pfn"))
    assert len(at_mwt2) == 2  # the third would overflow the user area
    for lfn, pfn in at_mwt2.items():
        assert pfn == user_areas.user_area_pfn(pgrid.mwt2, lfn) and "/userarea/" in pfn
        assert Path(pfn).read_bytes() == files[lfn]
    waiting = TransferRequest.objects.get(destination=pgrid.mwt2, state=TransferState.QUEUED)
    assert waiting.attempts == 0 and "user area at MWT2 full" in waiting.error
    config = SiteDDMConfig.objects.get(site=pgrid.mwt2)
    assert config.user_area_used_bytes == sum(len(files[lfn]) for lfn in at_mwt2)
    # Production data is not held back by the full user area, and lands in the production layout.
    prod = contents("P", 2, size=5000)
    pgrid.register("mc08.10.p.recon.AOD.v1", prod)
    pgrid.place("mc08.10.p.recon.AOD.v1", pgrid.bnl, prod)
    subscriptions.create_subscription(user=pgrid.operator, name="mc08.10.p.recon.AOD.v1", site_name="MWT2",
                                      activity="production")  # fmt: skip
    run_agents()
    for lfn in prod:
        assert FileReplica.objects.get(site=pgrid.mwt2, file__lfn=lfn).pfn == deterministic_pfn(pgrid.mwt2, lfn)
    # The recount sees what the catalog holds in the area.
    assert user_areas.recount() >= 1
    config.refresh_from_db()
    assert config.user_area_used_bytes == sum(len(files[lfn]) for lfn in at_mwt2)

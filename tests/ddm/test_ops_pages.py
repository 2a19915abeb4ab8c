"""Pages and API of priorities, user areas and channel health: shown to all, changed by data operators."""

import pytest
from django.utils import timezone

from datasets.models import ActivityPriority, ChannelControl, SiteDDMConfig, TransferChannelStat

from .test_policy_pages import api_as

pytestmark = pytest.mark.django_db


def test_priorities_page_and_api(pgrid, client):
    page = client.get("/ddm/priorities/?json").json()
    assert [row["activity"] for row in page["activities"]][:2] == ["data_taking", "dispatch"]
    assert client.get("/ddm/priorities/").status_code == 200
    assert client.get("/ddm/priorities/?x=1").status_code == 400
    client.force_login(pgrid.user)
    assert client.post("/ddm/priorities/", {"rank_user": "1"}).status_code == 403
    client.force_login(pgrid.operator)
    assert client.post("/ddm/priorities/", {"rank_user": "x"}).status_code == 400
    assert client.post("/ddm/priorities/", {"rank_user": "1"}).status_code == 302
    assert ActivityPriority.objects.get(activity="user").rank == 1
    answer = api_as(pgrid.operator).post("/api/v1/ddm/priorities/", {"production": 0}, format="json")
    assert answer.status_code == 400
    assert api_as(pgrid.user).post("/api/v1/ddm/priorities/", {"production": 1}, format="json").status_code == 403
    assert api_as(pgrid.operator).post("/api/v1/ddm/priorities/", {"production": 1}, format="json").status_code == 200


def test_user_area_quota_through_page_and_api(pgrid, client):
    client.force_login(pgrid.operator)
    assert client.post("/ddm/priorities/", {"site": "MWT2", "quota_gb": "5"}).status_code == 302
    assert SiteDDMConfig.objects.get(site=pgrid.mwt2).user_area_quota_bytes == 5 * 10**9
    rows = client.get("/ddm/priorities/?json").json()["user_areas"]
    assert rows == [{"site": "MWT2", "quota_bytes": 5 * 10**9, "used_bytes": 0, "pct": 0.0, "waiting_for_room": 0,
                     "counted_at": None}]  # fmt: skip
    assert api_as(pgrid.operator).post("/api/v1/ddm/user-areas/", {"site": "NOPE", "quota_bytes": 1},
                                       format="json").status_code == 404  # fmt: skip
    assert api_as(pgrid.user).post("/api/v1/ddm/user-areas/", {"site": "MWT2", "quota_bytes": 1},
                                   format="json").status_code == 403  # fmt: skip


def test_channel_health_page_pause_and_resume(pgrid, client):
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    TransferChannelStat.objects.create(source=pgrid.bnl, destination=pgrid.mwt2, hour=hour, files_failed=25)
    TransferChannelStat.objects.create(source=pgrid.fzk, destination=pgrid.mwt2, hour=hour, files_done=30,
                                       bytes_done=3000, seconds=3)  # fmt: skip
    health = {
        (c["source"], c["destination"]): c["health"] for c in client.get("/ddm/channels/?json").json()["channels"]
    }
    assert health == {("BNL", "MWT2"): "failing", ("FZK", "MWT2"): "healthy"}
    assert client.get("/ddm/channels/").status_code == 200
    client.force_login(pgrid.user)
    assert client.post("/ddm/channels/", {"source": "FZK", "destination": "MWT2", "do": "pause"}).status_code == 403
    client.force_login(pgrid.operator)
    assert client.post("/ddm/channels/", {"source": "FZK", "destination": "MWT2", "do": "stop"}).status_code == 400
    assert client.post("/ddm/channels/", {"source": "FZK", "destination": "FZK", "do": "pause"}).status_code == 400
    assert client.post("/ddm/channels/", {"source": "FZK", "destination": "MWT2", "do": "pause",
                                          "reason": "tests"}).status_code == 302  # fmt: skip
    assert ChannelControl.objects.get().paused
    health = {
        (c["source"], c["destination"]): c["health"] for c in client.get("/ddm/channels/?json").json()["channels"]
    }
    assert health[("FZK", "MWT2")] == "paused"
    assert client.post("/ddm/channels/", {"site": "SWT2", "do": "pause", "reason": "downtime"}).status_code == 302
    assert client.get("/ddm/channels/?json").json()["paused_sites"][0]["site__name"] == "SWT2"
    answer = api_as(pgrid.operator).post("/api/v1/ddm/sites/pause/", {"site": "SWT2", "paused": False}, format="json")
    assert answer.status_code == 200 and not SiteDDMConfig.objects.get(site=pgrid.swt2).paused
    answer = api_as(pgrid.operator).post("/api/v1/ddm/channels/", {"source": "FZK", "destination": "MWT2",
                                                                   "paused": False}, format="json")  # fmt: skip
    assert answer.status_code == 200 and not ChannelControl.objects.get().paused

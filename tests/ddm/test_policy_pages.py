"""The policy pages and API: reads open, writes for data operators, clear 4xx on bad input."""

import json

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from datasets.models import PlacementRule, SitePreference, Subscription

pytestmark = pytest.mark.django_db


def api_as(user):
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token.key}")
    return client


RULE = {"name": "aod-t1", "conditions": {"format": "AOD"}, "target": "all_tier1", "priority": 4}


def test_rule_api_writes_need_the_role(pgrid):
    assert APIClient().post("/api/v1/placement-rules/", RULE, format="json").status_code in (401, 403)
    assert api_as(pgrid.user).post("/api/v1/placement-rules/", RULE, format="json").status_code == 403
    operator = api_as(pgrid.operator)
    answer = operator.post("/api/v1/placement-rules/", RULE, format="json")
    assert answer.status_code == 201, answer.content
    pk = answer.json()["id"]
    bad = operator.post("/api/v1/placement-rules/", {**RULE, "name": "b", "target": "moon"}, format="json")
    assert bad.status_code == 400 and "target" in bad.json()["error"]
    assert operator.post("/api/v1/placement-rules/", RULE, format="json").status_code == 409
    changed = operator.patch(f"/api/v1/placement-rules/{pk}/", {"priority": 2}, format="json")
    assert changed.status_code == 200 and changed.json()["priority"] == 2
    assert api_as(pgrid.user).patch(f"/api/v1/placement-rules/{pk}/", {"priority": 5}, format="json").status_code == 403
    listed = APIClient().get("/api/v1/placement-rules/").json()
    assert [row["name"] for row in listed["results"]] == ["aod-t1"]


def test_apply_retroactively_through_the_api(pgrid, django_capture_on_commit_callbacks):
    pgrid.register("mc08.7.g.recon.AOD.v1")
    operator = api_as(pgrid.operator)
    pk = operator.post("/api/v1/placement-rules/", RULE, format="json").json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        assert operator.post(f"/api/v1/placement-rules/{pk}/apply/", {}, format="json").status_code == 202
    # Celery runs eagerly in tests: the task ran on commit.
    assert set(Subscription.objects.values_list("site__name", flat=True)) == {"BNL", "FZK"}
    decisions = APIClient().get("/api/v1/placement-decisions/?rule=aod-t1").json()["results"]
    assert decisions[0]["dataset"] == "mc08.7.g.recon.AOD.v1"
    assert {t["site"] for t in decisions[0]["targets"]} == {"BNL", "FZK"}


def test_rule_pages_and_json_twins(pgrid, client):
    PlacementRule.objects.create(name="tag", conditions={"format": "TAG"}, target="all_tier2",
                                 created_by_name="ddmops")  # fmt: skip
    pgrid.register("mc08.8.h.merge.TAG.v1")
    page = client.get("/ddm/rules/")
    assert page.status_code == 200 and b"tag" in page.content
    twin = client.get("/ddm/rules/?json").json()
    assert twin["rows"][0]["decisions"]["placed"] == 1
    rule = PlacementRule.objects.get()
    assert client.get(f"/ddm/rules/{rule.pk}/").status_code == 200
    detail = client.get(f"/ddm/rules/{rule.pk}/?json").json()
    assert {row["site"] for row in detail["rule"]["by_site"]} == {"AGLT2", "DESY", "MWT2", "SWT2"}
    assert client.get(f"/ddm/rules/{rule.pk}/?bogus=1").status_code == 400
    assert client.get("/ddm/rules/999/").status_code == 404
    decisions = client.get("/ddm/decisions/?json&state=placed").json()
    assert decisions["meta"]["total"] == 1 and decisions["facets"]["state"] == [{"value": "placed", "count": 1}]
    assert client.get("/ddm/decisions/?state=lost").status_code == 400
    placements = client.get("/ddm/placements/?json&site=MWT2").json()
    assert placements["rows"][0]["outcome"] == "subscribed"


def test_rule_forms(pgrid, client):
    client.force_login(pgrid.user)
    refused = client.post("/ddm/rules/", {"rule": json.dumps(RULE)})
    assert refused.status_code == 403 and not PlacementRule.objects.exists()
    client.force_login(pgrid.operator)
    assert client.post("/ddm/rules/", {"rule": "{not json"}).status_code == 400
    assert client.post("/ddm/rules/", {"rule": json.dumps(RULE)}).status_code == 302
    rule = PlacementRule.objects.get()
    assert client.post(f"/ddm/rules/{rule.pk}/disable").status_code == 302
    rule.refresh_from_db()
    assert not rule.enabled
    assert client.post(f"/ddm/rules/{rule.pk}/apply").status_code == 409  # disabled
    assert client.post(f"/ddm/rules/{rule.pk}/update", {"rule": '{"priority": 7}'}).status_code == 400
    assert client.post(f"/ddm/rules/{rule.pk}/delete").status_code == 302
    assert not PlacementRule.objects.exists()


def test_preferences_page_and_api(pgrid, client):
    client.force_login(pgrid.user)
    assert client.post("/ddm/preferences/", {"site": "MWT2", "kind": "format", "pattern": "AOD"}).status_code == 403
    client.force_login(pgrid.operator)
    assert client.post("/ddm/preferences/", {"site": "MWT2", "kind": "colour", "pattern": "AOD"}).status_code == 400
    assert client.post("/ddm/preferences/", {"site": "NOWHERE", "kind": "format", "pattern": "AOD"}).status_code == 404
    assert client.post("/ddm/preferences/", {"site": "MWT2", "kind": "format", "pattern": "AOD"}).status_code == 302
    assert client.post("/ddm/preferences/", {"site": "MWT2", "kind": "format", "pattern": "AOD"}).status_code == 409
    page = client.get("/ddm/preferences/?json").json()
    assert page["sites"][0]["site"] == "MWT2" and page["sites"][0]["preferences"][0]["pattern"] == "AOD"
    assert client.get("/ddm/preferences/").status_code == 200
    pk = SitePreference.objects.get().pk
    assert api_as(pgrid.operator).delete(f"/api/v1/site-preferences/{pk}/").status_code == 204
    made = api_as(pgrid.operator).post("/api/v1/site-preferences/", {"site": "SWT2", "kind": "category",
                                                                      "pattern": "mc"}, format="json")  # fmt: skip
    assert made.status_code == 201 and made.json()["site"] == "SWT2"

"""Tier-2 preferences: honoured by every-Tier-2 and spread rules where the shares allow, recorded where not."""

import pytest

from datasets.models import PlacementDecision, Subscription
from datasets.policy_choices import TargetOutcome
from datasets.services import policy_admin

pytestmark = pytest.mark.django_db


def prefer(grid, site, kind, pattern):
    policy_admin.add_preference(user=grid.operator, site_name=site, kind=kind, pattern=pattern)


def outcomes(name):
    decision = PlacementDecision.objects.get(dataset__name=name)
    return decision, dict(decision.targets.values_list("site__name", "outcome"))


def test_every_tier2_rule_leaves_out_sites_preferring_other_data(pgrid):
    prefer(pgrid, "MWT2", "format", "AOD|ESD")
    prefer(pgrid, "DESY", "category", "conditions")
    policy_admin.create_rule(user=pgrid.operator, spec={"name": "tag", "conditions": {"format": "TAG"},
                                                        "target": "all_tier2", "media": "disk"})  # fmt: skip
    pgrid.register("mc08.1.a.merge.TAG.v1")
    decision, seen = outcomes("mc08.1.a.merge.TAG.v1")
    assert seen == {"AGLT2": TargetOutcome.SUBSCRIBED, "SWT2": TargetOutcome.SUBSCRIBED,
                    "MWT2": TargetOutcome.SKIPPED_PREFERENCE, "DESY": TargetOutcome.SKIPPED_PREFERENCE}  # fmt: skip
    assert decision.targets.get(site__name="MWT2").note == "prefers format AOD|ESD"
    assert not decision.against_preferences


def test_a_spread_copy_goes_to_the_sites_wanting_it(pgrid):
    prefer(pgrid, "MWT2", "format", "AOD")
    prefer(pgrid, "AGLT2", "dataset", "mc08.*.AOD.*")
    prefer(pgrid, "SWT2", "category", "conditions")  # wants something else
    policy_admin.create_rule(user=pgrid.operator, spec={"name": "spread", "conditions": {"format": "AOD|ESD"},
                                                        "target": "spread_tier2", "clouds": ["US"]})  # fmt: skip
    pgrid.register("mc08.2.b.recon.AOD.v1")
    shares = {s.site.name: (s.share_start, s.share_end) for s in Subscription.objects.filter(rule__name="spread")}
    assert shares == {"AGLT2": (0, 500), "MWT2": (500, 1000)}
    _, seen = outcomes("mc08.2.b.recon.AOD.v1")
    assert seen["SWT2"] == TargetOutcome.SKIPPED_PREFERENCE


def test_when_no_tier2_wants_it_the_copy_is_placed_against_preferences_and_said_so(pgrid):
    for site in ("AGLT2", "MWT2", "SWT2"):
        prefer(pgrid, site, "format", "AOD")
    policy_admin.create_rule(user=pgrid.operator, spec={"name": "spread", "conditions": {"format": "ESD"},
                                                        "target": "spread_tier2", "clouds": ["US"]})  # fmt: skip
    pgrid.register("mc08.3.c.recon.ESD.v1")
    decision, seen = outcomes("mc08.3.c.recon.ESD.v1")
    assert set(seen.values()) == {TargetOutcome.AGAINST_PREFERENCE}
    assert decision.against_preferences and decision.n_subscribed == 3
    assert Subscription.objects.filter(rule__name="spread").count() == 3  # one complete copy all the same


def test_preferences_page_counts_what_was_honoured_and_what_not(pgrid, client):
    prefer(pgrid, "MWT2", "format", "AOD")
    for site in ("AGLT2", "SWT2"):
        prefer(pgrid, site, "format", "TAG")
    policy_admin.create_rule(user=pgrid.operator, spec={"name": "spread", "conditions": {"format": "ESD"},
                                                        "target": "spread_tier2", "clouds": ["US"]})  # fmt: skip
    policy_admin.create_rule(user=pgrid.operator, spec={"name": "tag", "conditions": {"format": "TAG"},
                                                        "target": "all_tier2", "clouds": ["US"]})  # fmt: skip
    pgrid.register("mc08.4.d.recon.ESD.v1")
    pgrid.register("mc08.4.d.merge.TAG.v1")
    rows = {row["site"]: row["outcomes"] for row in client.get("/ddm/preferences/?json").json()["sites"]}
    assert rows["MWT2"]["against_preference"] == 1 and rows["MWT2"]["skipped_preference"] == 1
    assert rows["AGLT2"]["subscribed"] == 1 and rows["AGLT2"]["against_preference"] == 1

"""Placement rules: matching, the subscriptions they create (with their rule), shares and the spread copy."""

import pytest

from datasets.choices import SubscriptionState
from datasets.models import FileReplica, PlacementDecision, PlacementRule, Subscription
from datasets.policy_choices import DecisionState, TargetOutcome
from datasets.services import policy, policy_admin, replicas
from datasets.services.policy import bucket_of
from pandamon.errors import Conflict, InvalidInput, PermissionDenied

from .conftest import contents, run_agents

pytestmark = pytest.mark.django_db

RAW = "data08_cos.00091900.physics_IDCosmic.daq.RAW.o4"


def rule(grid, **spec):
    return policy_admin.create_rule(user=grid.operator, spec=spec)


def sites_of(name):
    return sorted(Subscription.objects.filter(dataset__name=name).values_list("site__name", flat=True))


def test_raw_goes_to_one_tier1_tape_endpoint_by_share(pgrid):
    made = rule(pgrid, name="raw-to-t1-tape", conditions={"format": "RAW"}, target="tier1_by_share",
                media="tape", shares={"BNLTAPE": 3, "FZKTAPE": 1}, activity="data_taking", priority=5)  # fmt: skip
    names = [f"data08_cos.{run:08d}.physics_IDCosmic.daq.RAW.o4" for run in range(91900, 91908)]
    for name in names:
        pgrid.register(name)
    placed = [sites_of(name) for name in names]
    assert all(len(sites) == 1 for sites in placed)
    flat = [sites[0] for sites in placed]
    assert (flat.count("BNLTAPE"), flat.count("FZKTAPE")) == (6, 2)  # 3:1, tracked dataset by dataset
    subscription = Subscription.objects.filter(dataset__name=names[0]).get()
    assert (subscription.rule, subscription.activity, subscription.priority) == (made, "data_taking", 5)
    assert subscription.owner_name == "rule:raw-to-t1-tape"
    decision = PlacementDecision.objects.get(rule=made, dataset__name=names[0])
    assert decision.state == DecisionState.PLACED and decision.n_subscribed == 1


def test_aod_to_every_tier1_but_not_the_tier0_and_non_matching_untouched(pgrid):
    rule(pgrid, name="aod-to-all-t1", conditions={"format": "AOD", "category": "mc|csc"}, target="all_tier1")
    pgrid.register("mc08.105200.T1_McAtNlo.recon.AOD.e357")
    pgrid.register("mc08.105200.T1_McAtNlo.recon.ESD.e357")
    pgrid.register("user.bob.mytest.AOD")  # category user: the rule's category condition leaves it out
    assert sites_of("mc08.105200.T1_McAtNlo.recon.AOD.e357") == ["BNL", "FZK"]
    assert sites_of("mc08.105200.T1_McAtNlo.recon.ESD.e357") == []
    assert sites_of("user.bob.mytest.AOD") == []
    assert PlacementDecision.objects.count() == 1


def test_owner_and_negated_conditions(pgrid):
    rule(pgrid, name="bob-to-mwt2", conditions={"owner": "ddmops", "name": "!*.log"}, target="sites",
         sites=["MWT2"])  # fmt: skip
    pgrid.register("mc08.1.a.recon.AOD.v1")
    pgrid.register("mc08.1.a.recon.log")
    assert sites_of("mc08.1.a.recon.AOD.v1") == ["MWT2"]
    assert sites_of("mc08.1.a.recon.log") == []


def test_mc_produced_at_a_tier2_goes_back_to_its_cloud_tier1(pgrid):
    rule(pgrid, name="mc-home", conditions={"category": "mc", "format": "AOD|ESD|RAW"}, target="home_tier1")
    name = "mc08.105200.T1.recon.ESD.e357"
    files = contents("ESD", 2)
    pgrid.register(name, files)
    decision = PlacementDecision.objects.get(dataset__name=name)
    assert decision.state == DecisionState.WAITING and sites_of(name) == []
    pgrid.place(name, pgrid.mwt2, files)  # produced at the Tier-2 MWT2 (cloud US)
    assert policy.reevaluate_waiting()["subscriptions"] == 1
    assert sites_of(name) == ["BNL"]
    assert Subscription.objects.get(dataset__name=name, site=pgrid.bnl).rule.name == "mc-home"
    run_agents()
    assert FileReplica.objects.filter(site=pgrid.bnl).count() == 2


def test_tag_and_conditions_to_every_tier2(pgrid):
    rule(pgrid, name="tag-to-t2", conditions={"format": "TAG"}, target="all_tier2", media="disk")
    rule(pgrid, name="cond-to-t2", conditions={"category": "conditions"}, target="all_tier2", media="disk")
    pgrid.register("mc08.105200.T1.merge.TAG.e357")
    pgrid.register("cond08.00001.lar.calib.COND")
    expected = ["AGLT2", "DESY", "MWT2", "SWT2"]  # not the tape endpoints, not the Tier-1s
    assert sites_of("mc08.105200.T1.merge.TAG.e357") == expected
    assert sites_of("cond08.00001.lar.calib.COND") == expected


def test_one_copy_spread_over_a_clouds_tier2s(pgrid):
    made = rule(pgrid, name="spread-us", conditions={"format": "AOD"}, target="spread_tier2", clouds=["US"],
                media="disk", shares={"MWT2": 2})  # fmt: skip
    name = "mc08.105200.T1.recon.AOD.e357"
    files = contents("AOD", 40)
    pgrid.register(name, files)
    pgrid.place(name, pgrid.bnl, files)
    shares = {s.site.name: (s.share_start, s.share_end) for s in Subscription.objects.filter(rule=made)}
    # Weights AGLT2 1, MWT2 2, SWT2 1: consecutive ranges covering every bucket once.
    assert shares == {"AGLT2": (0, 250), "MWT2": (250, 750), "SWT2": (750, 1000)}
    run_agents()
    holders = {}
    for lfn in files:
        at = set(FileReplica.objects.filter(file__lfn=lfn).exclude(site=pgrid.bnl).values_list("site__name", flat=True))
        assert len(at) == 1, f"{lfn} is at {at}"  # each file at exactly one Tier-2
        holders[lfn] = at.pop()
        start, end = shares[holders[lfn]]
        assert start <= bucket_of(lfn) < end
    assert set(holders.values()) == {"AGLT2", "MWT2", "SWT2"}
    states = set(Subscription.objects.filter(rule=made).values_list("state", flat=True))
    assert states == {SubscriptionState.DONE}  # each share is done without its site holding the whole dataset


def test_rules_are_applied_retroactively_once(pgrid):
    pgrid.register("mc08.2.b.recon.AOD.v1")
    pgrid.register("dummy.log.TXT")
    made = rule(pgrid, name="late-aod", conditions={"format": "AOD"}, target="all_tier1")
    assert sites_of("mc08.2.b.recon.AOD.v1") == []
    counts = policy.apply_retroactively()
    assert counts["subscriptions"] == 2 and counts["decisions"] == 1
    assert sites_of("mc08.2.b.recon.AOD.v1") == ["BNL", "FZK"]
    assert policy.apply_retroactively()["decisions"] == 0  # decided already: nothing twice
    made.refresh_from_db()
    assert made.applied_at is not None


def test_existing_subscriptions_and_paused_or_storageless_sites_are_recorded(pgrid):
    from datasets.models import SiteDDMConfig
    from datasets.services import subscriptions

    SiteDDMConfig.objects.create(site=pgrid.fzk, paused=True, paused_reason="downtime")
    name = "mc08.3.c.recon.AOD.v1"
    pgrid.register(name)  # no rule yet
    subscriptions.create_subscription(user=pgrid.operator, name=name, site_name="BNL")
    made = rule(pgrid, name="aod", conditions={"format": "AOD"}, target="all_tier1")
    policy.apply_retroactively()
    decision = PlacementDecision.objects.get(rule=made)
    outcomes = dict(decision.targets.values_list("site__name", "outcome"))
    assert outcomes == {"BNL": TargetOutcome.EXISTING, "FZK": TargetOutcome.SKIPPED_PAUSED}
    assert decision.state == DecisionState.PARTIAL
    assert Subscription.objects.get(dataset__name=name).rule is None  # the user's subscription is left alone


def test_a_failed_registration_creates_no_subscription(pgrid):
    rule(pgrid, name="aod", conditions={"format": "AOD"}, target="all_tier1")
    pgrid.register("mc08.4.d.recon.AOD.v1")
    from datasets.services import catalog

    with pytest.raises(Conflict):
        catalog.register_new_datasets(
            user=pgrid.operator, specs=[{"name": "mc08.5.e.recon.AOD.v1"}, {"name": "mc08.4.d.recon.AOD.v1"}]
        )
    assert sites_of("mc08.5.e.recon.AOD.v1") == []
    assert not PlacementDecision.objects.filter(dataset__name="mc08.5.e.recon.AOD.v1").exists()


def test_rule_writes_need_a_data_operator_and_valid_input(pgrid):
    with pytest.raises(PermissionDenied):
        policy_admin.create_rule(user=pgrid.user, spec={"name": "x", "target": "all_tier1"})
    bad = [
        {"name": "x", "target": "nowhere"},
        {"name": "x", "target": "all_tier1", "conditions": {"colour": "red"}},
        {"name": "x", "target": "all_tier1", "clouds": ["MARS"]},
        {"name": "x", "target": "sites"},
        {"name": "x", "target": "all_tier1", "shares": {"BNL": -1}},
        {"name": "x", "target": "all_tier1", "priority": 9},
        {"name": "bad name", "target": "all_tier1"},
    ]
    for spec in bad:
        with pytest.raises(InvalidInput):
            policy_admin.create_rule(user=pgrid.operator, spec=spec)
    assert not PlacementRule.objects.exists()
    rule(pgrid, name="x", target="all_tier1")
    with pytest.raises(Conflict):
        rule(pgrid, name="x", target="all_tier1")


def test_replicas_registered_by_hand_are_unaffected(pgrid):
    """Registering replicas does not evaluate rules: only new datasets and the retroactive run do."""
    rule(pgrid, name="aod", conditions={"format": "AOD"}, target="all_tier1")
    name = "mc08.6.f.recon.AOD.v1"
    files = contents("F", 1)
    pgrid.register(name, files)
    pgrid.place(name, pgrid.mwt2, files)
    replicas.register_dataset_location(user=pgrid.operator, name=name, site_name="SWT2", complete=False)
    assert sites_of(name) == ["BNL", "FZK"]

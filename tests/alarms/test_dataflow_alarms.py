"""Data-flow alarms: stuck subscriptions, failing transfer channels, storage nearly full (space report or
declared capacity). Each fires on crafted trouble with its text, stays quiet below its thresholds, is
updated (not duplicated) on the next run and resolved when the trouble ends."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from alarms import rules
from alarms.choices import AlarmState
from alarms.models import Alarm, AlarmSubscription
from alarms.services.alarm_mail import mail_alarms
from datasets.choices import Activity, SubscriptionState
from datasets.models import Dataset, SiteReplicaTotals, Subscription, TransferChannelStat
from datasets.services import subscriptions
from datasets.services.replicas import deterministic_pfn
from sites.models import StorageSpace
from sites.services import record_storage_space
from tests.dataflow.conftest import Grid, run_agents

from ..factories import SiteFactory, UserFactory

pytestmark = pytest.mark.django_db
EVGEN = "mc08.105200.T1_McAtNlo_Jimmy.evgen.EVNT.e357"


@pytest.fixture
def grid(db, tmp_path, settings):
    settings.PANDA = {**settings.PANDA, "TRANSFER_RETRY_SECONDS": 0, "TRANSFER_TIMEOUT_SECONDS": 10}
    return Grid(tmp_path)


def live(category):
    return Alarm.objects.exclude(state=AlarmState.RESOLVED).filter(category=category)


def run(rule, now):
    return rules.evaluate(now=now, rules=(rule,))[rule.__name__]


def hour_of(moment):
    return moment.replace(minute=0, second=0, microsecond=0)


# ---------------------------------------------------------------- subscriptions stuck


def test_a_subscription_stuck_on_a_lost_file_raises_then_resolves_when_repaired(grid, settings):
    settings.PANDA_ALARMS = {**settings.PANDA_ALARMS, "CHANNEL_MIN_ATTEMPTS": 5}
    files = {f"EVNT.01._{i:05d}.pool.root": bytes([i]) * 1000 for i in (1, 2)}
    grid.dataset(EVGEN, grid.bnl, files)
    lost = next(iter(files))
    Path(deterministic_pfn(grid.bnl, lost)).unlink()  # the only replica is gone from the storage
    subscription = subscriptions.create_subscription(user=grid.operator, name=EVGEN, site_name="MWT2")
    run_agents(rounds=settings.PANDA["TRANSFER_MAX_ATTEMPTS"] + 2)
    subscription.refresh_from_db()
    assert subscription.state == SubscriptionState.STUCK
    stuck_at = subscription.stuck_at

    assert run(rules.subscriptions_stuck, stuck_at + timedelta(minutes=29)) == 0, "not stuck long enough"
    assert not live("subscriptions-stuck").exists()
    later = stuck_at + timedelta(minutes=45)
    assert run(rules.subscriptions_stuck, later) == 1
    alarm = live("subscriptions-stuck").get()
    assert (alarm.subject_kind, alarm.subject, alarm.severity) == ("site", "MWT2", "warning")
    assert alarm.message.startswith(
        f"1 subscription(s) stuck for more than 30 min; longest: {EVGEN} for 45 min "
        f"(since {stuck_at:%Y-%m-%d %H:%M} UTC): 1 file(s) failed every transfer attempt; latest: {lost}: "
    )

    # The failed attempts fail the channel too: 4 of 5 attempts from BNL to MWT2.
    assert run(rules.channel_failure_rate, timezone.now()) == 1
    channel = live("channel-failures").get()
    assert (channel.subject_kind, channel.subject, channel.severity) == ("channel", "BNL->MWT2", "warning")
    assert channel.message.startswith("4 of 5 transfer attempts from BNL to MWT2 failed since ")
    assert "last error: " in channel.message and "none recorded" not in channel.message

    assert run(rules.subscriptions_stuck, later + timedelta(minutes=5)) == 1
    alarm.refresh_from_db()
    assert (alarm.count, Alarm.objects.filter(category="subscriptions-stuck").count()) == (2, 1), "updated, not added"

    # Fixed at the source and resumed: the file arrives, the subscription is done, the alarm resolves.
    grid.write(grid.bnl, lost, files[lost])
    subscriptions.resume_subscription(user=grid.operator, pk=subscription.pk)
    run_agents()
    subscription.refresh_from_db()
    assert subscription.state == SubscriptionState.DONE
    assert run(rules.subscriptions_stuck, later + timedelta(minutes=10)) == 0
    alarm.refresh_from_db()
    assert (alarm.state, alarm.resolved_by) == (AlarmState.RESOLVED, "rule:subscriptions_stuck")


def stuck_subscription(site, name, minutes, activity=Activity.USER, state=SubscriptionState.STUCK):
    dataset = Dataset.objects.create(name=name)
    return Subscription.objects.create(
        dataset=dataset, site=site, owner_name="ddmops", activity=activity, state=state,
        stuck_at=timezone.now() - timedelta(minutes=minutes), reason=f"1 file(s) failed every transfer attempt; {name}",
    )  # fmt: skip


def test_stuck_subscriptions_make_one_alarm_per_site_critical_when_jobs_wait():
    bnl, mwt2, fzk = SiteFactory(name="BNL"), SiteFactory(name="MWT2"), SiteFactory(name="FZK")
    stuck_subscription(mwt2, "user.alice.data1", 40)
    stuck_subscription(mwt2, "panda.77.20261201.user.ab_dis123", 90, activity=Activity.DISPATCH)
    stuck_subscription(bnl, "user.alice.data2", 50)
    stuck_subscription(fzk, "user.alice.data3", 10)  # not for long enough
    stuck_subscription(fzk, "user.alice.data4", 300, state=SubscriptionState.SUSPENDED)
    stuck_subscription(fzk, "user.alice.data5", 300, state=SubscriptionState.ACTIVE)
    findings = {f.subject: f for f in rules.subscriptions_stuck(timezone.now())}
    assert set(findings) == {"MWT2", "BNL"}
    assert findings["MWT2"].severity == "critical" and findings["BNL"].severity == "warning"
    assert findings["MWT2"].message.startswith(
        "2 subscription(s) stuck for more than 30 min, 1 of them PanDA dispatch blocks (jobs wait); longest: "
        "panda.77.20261201.user.ab_dis123 for 90 min (since "
    )
    assert findings["BNL"].message.startswith("1 subscription(s) stuck for more than 30 min; longest: user.alice.data2")


def test_the_stuck_threshold_is_a_setting(settings):
    stuck_subscription(SiteFactory(name="MWT2"), "user.alice.data1", 40)
    settings.PANDA_ALARMS = {**settings.PANDA_ALARMS, "SUBSCRIPTION_STUCK_MINUTES": 60}
    assert rules.subscriptions_stuck(timezone.now()) == []
    settings.PANDA_ALARMS = {**settings.PANDA_ALARMS, "SUBSCRIPTION_STUCK_MINUTES": 20}
    [finding] = rules.subscriptions_stuck(timezone.now())
    assert "stuck for more than 20 min" in finding.message


# ---------------------------------------------------------------- channel failure rate


def channel_hour(source, destination, hour, done=0, failed=0, error=""):
    return TransferChannelStat.objects.create(source=source, destination=destination, hour=hour, files_done=done,
                                              files_failed=failed, bytes_done=done * 1000, last_error=error)  # fmt: skip


def test_channels_failing_most_attempts_raise_keyed_by_channel_then_resolve():
    bnl, mwt2, fzk, cern = (SiteFactory(name=n) for n in ("BNL", "MWT2", "FZK", "CERN"))
    now = timezone.now()
    hour = hour_of(now)
    channel_hour(bnl, mwt2, hour - timedelta(hours=2), failed=10, error="connection refused")
    channel_hour(bnl, mwt2, hour, done=5, failed=15, error="HTTP 503 from https://door.mwt2")
    channel_hour(bnl, mwt2, hour - timedelta(hours=1), done=0, failed=0)
    channel_hour(fzk, mwt2, hour, failed=19, error="timeout")  # too few attempts
    channel_hour(bnl, fzk, hour, done=12, failed=10, error="timeout")  # under half failed
    channel_hour(mwt2, bnl, hour - timedelta(hours=3), failed=100, error="old")  # before the window
    channel_hour(cern, bnl, hour - timedelta(hours=1), failed=25, error="no route to host")
    window = f"{hour - timedelta(hours=2):%Y-%m-%d %H:%M} UTC"

    assert run(rules.channel_failure_rate, now) == 2
    alarms = {a.subject: a for a in live("channel-failures")}
    assert set(alarms) == {"BNL->MWT2", "CERN->BNL"}
    assert alarms["BNL->MWT2"].severity == "warning" and alarms["BNL->MWT2"].subject_kind == "channel"
    assert alarms["BNL->MWT2"].message == (
        f"25 of 30 transfer attempts from BNL to MWT2 failed since {window}; "
        "last error: HTTP 503 from https://door.mwt2"
    )
    assert alarms["CERN->BNL"].severity == "critical", "nothing got through"
    assert alarms["CERN->BNL"].message.endswith("last error: no route to host")

    run(rules.channel_failure_rate, now)
    assert Alarm.objects.filter(category="channel-failures").count() == 2
    assert live("channel-failures").get(subject="BNL->MWT2").count == 2

    TransferChannelStat.objects.filter(source=bnl, destination=mwt2, hour=hour).update(files_done=100)
    assert run(rules.channel_failure_rate, now) == 1
    recovered = Alarm.objects.get(category="channel-failures", subject="BNL->MWT2")
    assert (recovered.state, recovered.resolved_by) == (AlarmState.RESOLVED, "rule:channel_failure_rate")
    assert run(rules.channel_failure_rate, now + timedelta(hours=3)) == 0, "the window moved past the failures"
    assert not live("channel-failures").exists()


def test_channel_thresholds_are_settings(settings):
    bnl, mwt2 = SiteFactory(name="BNL"), SiteFactory(name="MWT2")
    channel_hour(bnl, mwt2, hour_of(timezone.now()), done=6, failed=4, error="refused")
    assert rules.channel_failure_rate(timezone.now()) == []
    settings.PANDA_ALARMS = {**settings.PANDA_ALARMS, "CHANNEL_MIN_ATTEMPTS": 10, "CHANNEL_FAILED_SHARE": 0.4}
    [finding] = rules.channel_failure_rate(timezone.now())
    assert finding.subject == "BNL->MWT2"
    settings.PANDA_ALARMS = {**settings.PANDA_ALARMS, "CHANNEL_WINDOW_HOURS": 1}
    old = hour_of(timezone.now()) - timedelta(hours=3)
    TransferChannelStat.objects.update(hour=old)
    assert rules.channel_failure_rate(timezone.now()) == []


def test_site_subscribers_are_mailed_channel_alarms_from_or_to_their_site():
    bnl, mwt2 = SiteFactory(name="BNL"), SiteFactory(name="MWT2")
    AlarmSubscription.objects.create(user=UserFactory(username="ann", email="ann@example.org"), site="MWT2")
    AlarmSubscription.objects.create(user=UserFactory(username="fred", email="fred@example.org"), site="FZK")
    channel_hour(bnl, mwt2, hour_of(timezone.now()), failed=30, error="refused")
    rules.evaluate(rules=(rules.channel_failure_rate,))
    assert mail_alarms() == 1
    assert mail.outbox[0].to == ["ann@example.org"] and "channel BNL->MWT2" in mail.outbox[0].body


# ---------------------------------------------------------------- storage nearly full


def test_storage_full_by_the_space_report_when_there_is_one_else_by_the_declared_capacity():
    reported_full = SiteFactory(name="REPORTED", storage_capacity_gb=1000)
    reported_roomy = SiteFactory(name="ROOMY", storage_capacity_gb=10)
    brimful = SiteFactory(name="BRIMFUL")
    declared = SiteFactory(name="DECLARED", storage_capacity_gb=10)
    empty_report = SiteFactory(name="EMPTYREPORT", storage_capacity_gb=10)
    record_storage_space(site=reported_full, used_bytes=95 * 10**9, free_bytes=5 * 10**9, total_bytes=100 * 10**9,
                         reported_by="pilot factory-bnl")  # fmt: skip
    record_storage_space(site=reported_roomy, used_bytes=10**9, free_bytes=9 * 10**9, total_bytes=10 * 10**9,
                         reported_by="storage agent")  # fmt: skip
    record_storage_space(site=brimful, used_bytes=10**9, free_bytes=0, total_bytes=10**9, reported_by="storage agent")
    record_storage_space(site=empty_report, used_bytes=0, free_bytes=0, total_bytes=0, reported_by="pilot x")
    for site in (reported_roomy, declared, empty_report, reported_full):  # what the catalog holds there
        SiteReplicaTotals.objects.create(site=site, files=1, bytes=9_500_000_000)
    reported_at = StorageSpace.objects.get(site=reported_full).reported_at

    assert run(rules.storage_nearly_full, timezone.now()) == 4
    alarms = {a.subject: a for a in live("site-storage-full")}
    assert set(alarms) == {"REPORTED", "BRIMFUL", "DECLARED", "EMPTYREPORT"}, "ROOMY's report wins over its catalog"
    assert alarms["REPORTED"].severity == "warning"
    assert alarms["REPORTED"].message == (
        "storage 95% full (95.0 of 100.0 GB used, 5.0 GB free): space report by pilot factory-bnl at "
        f"{reported_at:%Y-%m-%d %H:%M} UTC"
    )
    assert alarms["BRIMFUL"].severity == "critical"
    for name in ("DECLARED", "EMPTYREPORT"):  # no report, or one without a total: the declared capacity
        assert alarms[name].message == (
            "storage 95% full (9.5 of 10 GB): the catalog's replicas against the declared capacity (no space report)"
        )

    run(rules.storage_nearly_full, timezone.now())
    assert Alarm.objects.get(pk=alarms["REPORTED"].pk).count == 2

    record_storage_space(site=reported_full, used_bytes=50 * 10**9, free_bytes=50 * 10**9, total_bytes=100 * 10**9,
                         reported_by="pilot factory-bnl")  # fmt: skip
    assert run(rules.storage_nearly_full, timezone.now()) == 3
    assert Alarm.objects.get(subject="REPORTED").state == AlarmState.RESOLVED


def test_storage_below_the_share_is_quiet(settings):
    site = SiteFactory(name="HALF")
    record_storage_space(site=site, used_bytes=85, free_bytes=15, total_bytes=100, reported_by="storage agent")
    assert rules.storage_nearly_full(timezone.now()) == []
    settings.PANDA_ALARMS = {**settings.PANDA_ALARMS, "STORAGE_FULL_SHARE": 0.8}
    assert [f.subject for f in rules.storage_nearly_full(timezone.now())] == ["HALF"]


# ---------------------------------------------------------------- the panel and the API


def test_the_panel_and_the_api_explain_the_new_categories():
    bnl, mwt2 = SiteFactory(name="BNL"), SiteFactory(name="MWT2")
    channel_hour(bnl, mwt2, hour_of(timezone.now()), failed=30, error="refused")
    stuck_subscription(mwt2, "user.alice.data1", 40)
    rules.evaluate(rules=(rules.channel_failure_rate, rules.subscriptions_stuck))

    categories = {c["category"]: c for c in APIClient().get("/api/v1/alarms/categories/").json()}
    assert categories["subscriptions-stuck"]["help"].startswith("Subscriptions of the site stuck for more than 30 min")
    assert categories["channel-failures"]["subject_kind"] == "channel"
    channel_help = categories["channel-failures"]["help"]
    assert "Since the start of the hour 2 h ago, 50% or more of at least 20 transfer attempts" in channel_help
    assert "space report" in categories["site-storage-full"]["help"]

    listing = APIClient().get("/api/v1/alarms/", {"subjectkind": "channel"}).json()["results"]
    assert [(a["subject"], a["category_help"][:13]) for a in listing] == [("BNL->MWT2", "Since the sta")]
    rows = {r["category"]: r for r in Client().get("/alarms/", {"json": ""}).json()["rows"]}
    assert rows["channel-failures"]["subject_url"] == "/transfers/channels/?source=BNL&destination=MWT2"
    assert rows["subscriptions-stuck"]["category_help"].startswith("Subscriptions of the site stuck")
    assert rows["subscriptions-stuck"]["subject_url"] == "/sites/MWT2/"
    assert Client().get("/alarms/").status_code == 200

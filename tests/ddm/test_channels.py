"""Channel health: a failing channel is routed around (another source replica, or a relay through a Tier-1), an
alarm is raised, and operators pause and resume channels and sites."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alarms.models import Alarm
from alarms.rules import channel_failure_rate, evaluate
from datasets.choices import TransferState
from datasets.models import FileReplica, TransferChannelStat, TransferRequest
from datasets.services import channels, subscriptions, transfers
from pandamon.errors import PermissionDenied

from .conftest import contents, run_agents

pytestmark = pytest.mark.django_db


def failing(source, destination, failed=30):
    TransferChannelStat.objects.create(source=source, destination=destination, hour=timezone.now().replace(
        minute=0, second=0, microsecond=0), files_failed=failed, last_error="connection refused")  # fmt: skip


def sources_used(site):
    return set(TransferRequest.objects.filter(destination=site, state=TransferState.DONE).values_list(
        "source__name", flat=True))  # fmt: skip


def test_a_failing_channel_is_routed_around_through_another_replica(pgrid):
    files = contents("R", 3)
    name = "mc08.11.r.recon.AOD.v1"
    pgrid.register(name, files)
    pgrid.place(name, pgrid.bnl, files)  # the usual source: same cloud, Tier-1
    pgrid.place(name, pgrid.fzk, files)
    failing(pgrid.bnl, pgrid.mwt2)
    subscriptions.create_subscription(user=pgrid.operator, name=name, site_name="MWT2")
    run_agents()
    assert FileReplica.objects.filter(site=pgrid.mwt2).count() == 3
    assert sources_used(pgrid.mwt2) == {"FZK"}
    evaluate(rules=(channel_failure_rate,))
    alarm = Alarm.objects.get(category="channel-failures")
    assert alarm.subject == "BNL->MWT2"


def test_with_only_failing_channels_the_file_is_relayed_through_a_tier1(pgrid):
    files = contents("T", 2)
    name = "mc08.12.t.recon.AOD.v1"
    pgrid.register(name, files)
    pgrid.place(name, pgrid.desy, files)  # only at a Tier-2 of another cloud
    failing(pgrid.desy, pgrid.mwt2)
    subscriptions.create_subscription(user=pgrid.operator, name=name, site_name="MWT2")
    subscriptions.evaluate_subscriptions()
    counts = transfers.transfer_batch(agent="a")
    assert counts["deferred"] == 2
    waiting = TransferRequest.objects.filter(destination=pgrid.mwt2)
    assert all(r.attempts == 0 and "relayed through the Tier-1 BNL" in r.error for r in waiting)
    TransferRequest.objects.filter(destination=pgrid.mwt2).update(next_attempt_at=timezone.now())
    run_agents()
    assert FileReplica.objects.filter(site=pgrid.bnl).count() == 2  # the relay copies
    TransferRequest.objects.filter(destination=pgrid.mwt2, state=TransferState.QUEUED).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    run_agents()
    assert FileReplica.objects.filter(site=pgrid.mwt2).count() == 2
    assert sources_used(pgrid.mwt2) == {"BNL"}


def test_paused_channels_and_sites(pgrid):
    files = contents("S", 2)
    name = "mc08.13.s.recon.AOD.v1"
    pgrid.register(name, files)
    pgrid.place(name, pgrid.bnl, files)
    pgrid.place(name, pgrid.fzk, files)
    with pytest.raises(PermissionDenied):
        channels.set_channel_paused(user=pgrid.user, source="BNL", destination="MWT2", paused=True)
    channels.set_channel_paused(user=pgrid.operator, source="BNL", destination="MWT2", paused=True, reason="test")
    channels.set_site_paused(user=pgrid.operator, site_name="SWT2", paused=True, reason="downtime")
    subscriptions.create_subscription(user=pgrid.operator, name=name, site_name="MWT2")
    subscriptions.create_subscription(user=pgrid.operator, name=name, site_name="SWT2")
    run_agents()
    assert sources_used(pgrid.mwt2) == {"FZK"}  # the paused channel is never used
    assert TransferRequest.objects.filter(destination=pgrid.swt2, state=TransferState.QUEUED).count() == 2
    assert not FileReplica.objects.filter(site=pgrid.swt2).exists()  # a paused site receives nothing
    channels.set_site_paused(user=pgrid.operator, site_name="SWT2", paused=False)
    run_agents()
    assert FileReplica.objects.filter(site=pgrid.swt2).count() == 2

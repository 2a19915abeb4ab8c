"""Alarms: rules fire on crafted trouble and stay quiet on health, the same alarm is updated not
duplicated, shifters acknowledge and resolve, probes register, subscribers are mailed once per quiet period."""

from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from alarms import rules
from alarms.choices import AlarmState
from alarms.models import Alarm, AlarmSubscription
from alarms.services.alarm_mail import mail_alarms
from alarms.services.alarms import Finding, raise_alarm
from jobs.choices import JobStatus
from pandamon import roles
from pandamon.models import WorkerRun
from sites.models import PilotActivity

from ..concurrency import run_together
from ..factories import JobFactory, SiteFactory, UserFactory, grant_role

pytestmark = pytest.mark.django_db
NOW = timezone.now()


def firing(rule):
    return {(f.category, f.subject) for f in rule(timezone.now())}


def hours_ago(hours):
    return timezone.now() - timedelta(hours=hours)


def test_site_without_pilots_fires_only_when_activated_jobs_wait():
    quiet, busy, healthy = SiteFactory(name="QUIET"), SiteFactory(name="BUSY"), SiteFactory(name="HEALTHY")
    JobFactory(computing_site=quiet, status=JobStatus.RUNNING)
    JobFactory(computing_site=busy, status=JobStatus.ACTIVATED)
    JobFactory(computing_site=healthy, status=JobStatus.ACTIVATED)
    PilotActivity.objects.update_or_create(site=busy, defaults={"last_contact_at": hours_ago(3)})
    PilotActivity.objects.update_or_create(site=healthy, defaults={"last_contact_at": timezone.now()})
    assert firing(rules.site_without_pilots) == {("site-no-pilots", "BUSY")}


def test_jobs_stuck_in_assigned_or_activated_per_site():
    site = SiteFactory(name="SLOW")
    JobFactory(computing_site=site, status=JobStatus.ACTIVATED, state_change_time=hours_ago(7))
    JobFactory(computing_site=site, status=JobStatus.ASSIGNED, state_change_time=hours_ago(2))
    JobFactory(computing_site=SiteFactory(name="FINE"), status=JobStatus.ACTIVATED, state_change_time=hours_ago(1))
    assert firing(rules.jobs_waiting_too_long) == {("jobs-stuck-activated", "SLOW")}


def test_failure_surge_and_lost_heartbeats():
    bad, ok = SiteFactory(name="BAD"), SiteFactory(name="OK")
    JobFactory.create_batch(20, computing_site=bad, status=JobStatus.FAILED, job_dispatcher_error_code=100)
    JobFactory.create_batch(5, computing_site=bad, status=JobStatus.FINISHED)
    JobFactory.create_batch(20, computing_site=ok, status=JobStatus.FAILED)
    JobFactory.create_batch(40, computing_site=ok, status=JobStatus.FINISHED)
    assert firing(rules.failure_surge) == {("site-failure-surge", "BAD"), ("site-lost-heartbeats", "BAD")}


def test_jobs_running_far_longer_than_their_type():
    for _ in range(3):
        JobFactory(status=JobStatus.FINISHED, processing_type="reco", start_time=hours_ago(2), end_time=hours_ago(1))
    slow = JobFactory(status=JobStatus.RUNNING, processing_type="reco", start_time=hours_ago(5))
    JobFactory(status=JobStatus.RUNNING, processing_type="reco", start_time=hours_ago(2))
    assert firing(rules.long_running_jobs) == {("job-running-too-long", str(slow.pk))}


def test_periodic_workers_that_stopped_or_failed():
    for entry in rules.settings.CELERY_BEAT_SCHEDULE.values():
        WorkerRun.objects.create(name=entry["task"], started_at=timezone.now(), status=WorkerRun.Status.DONE)
    assert firing(rules.workers_not_running) == set()
    WorkerRun.objects.filter(name="jobs.broker_defined_jobs").update(started_at=hours_ago(1))
    WorkerRun.objects.create(name="quotas.reconcile", started_at=timezone.now(), status=WorkerRun.Status.FAILED,
                             error="boom")  # fmt: skip
    assert firing(rules.workers_not_running) == {
        ("worker-not-running", "jobs.broker_defined_jobs"),
        ("worker-failed", "quotas.reconcile"),
    }


def test_evaluate_raises_once_updates_then_resolves_when_cleared():
    site = SiteFactory(name="BUSY")
    job = JobFactory(computing_site=site, status=JobStatus.ACTIVATED)
    rules.evaluate()
    rules.evaluate()
    alarm = Alarm.objects.get(category="site-no-pilots")
    assert (alarm.count, alarm.state) == (2, AlarmState.OPEN)
    job.status = JobStatus.SENT
    job.save()
    rules.evaluate()
    alarm.refresh_from_db()
    assert alarm.state == AlarmState.RESOLVED and alarm.resolved_by == "rule:site_without_pilots"


def test_a_worsening_alarm_is_escalated_never_downgraded():
    raise_alarm(Finding("probe-disk", "warning", "site", "BNL", "90% full"), source="probe")
    raise_alarm(Finding("probe-disk", "critical", "site", "BNL", "99% full"), source="probe")
    raise_alarm(Finding("probe-disk", "info", "site", "BNL", "98% full"), source="probe")
    alarm = Alarm.objects.get()
    assert (alarm.severity, alarm.count, alarm.message) == ("critical", 3, "98% full")


@pytest.mark.django_db(transaction=True)
def test_concurrent_raises_of_the_same_alarm_make_one_row():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL row locks")
    errors = run_together(
        lambda: raise_alarm(Finding("probe-x", "warning", "service", "broker", "down"), source="probe"), 6
    )
    assert errors == []
    assert list(Alarm.objects.values_list("count", flat=True)) == [6]


def api_as(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {Token.objects.get_or_create(user=user)[0].key}")
    return client


def test_probes_register_alarms_and_shifters_handle_them():
    shifter = grant_role(UserFactory(username="shifty"), roles.SHIFTER)
    body = {"category": "probe-storage", "severity": "critical", "subject_kind": "site", "subject": "BNL",
            "message": "storage 98% full"}  # fmt: skip
    user_api = api_as(UserFactory(username="alice"))
    response = user_api.post("/api/v1/alarms/", body, format="json")
    assert response.status_code == 403 and "shifter" in response.json()["error"]
    created = api_as(shifter).post("/api/v1/alarms/", body, format="json").json()
    assert created["state"] == "open" and created["source"] == "api:shifty"
    bad = api_as(shifter).post("/api/v1/alarms/", {**body, "severity": "apocalyptic"}, format="json")
    assert bad.status_code == 400 and Alarm.objects.count() == 1
    assert user_api.post(f"/api/v1/alarms/{created['id']}/acknowledge/").status_code == 403
    assert api_as(shifter).post(f"/api/v1/alarms/{created['id']}/acknowledge/").json()["state"] == "acknowledged"
    listing = APIClient().get("/api/v1/alarms/", {"state": "!resolved", "subject": "BNL"}).json()
    assert [row["id"] for row in listing["results"]] == [created["id"]]
    page = Client()
    page.force_login(shifter)
    assert page.post(f"/alarms/{created['id']}/resolve/").status_code == 302
    assert Alarm.objects.get().state == AlarmState.RESOLVED
    assert page.post(f"/alarms/{created['id']}/resolve/").status_code == 409


def test_every_page_shows_the_open_alarms_and_the_panel_lists_them():
    raise_alarm(Finding("site-no-pilots", "critical", "site", "BNL", "no pilots"), source="rule:x")
    raise_alarm(Finding("probe-y", "warning", "service", "broker", "slow"), source="probe")
    html = Client().get("/jobs/").content.decode()
    assert "<b>1 critical</b>" in html and "1 warning" in html
    data = Client().get("/alarms/", {"json": "", "severity": "critical"}).json()
    assert [row["subject"] for row in data["rows"]] == ["BNL"]
    assert {f["value"]: f["count"] for f in data["facets"]["state"]} == {"open": 1}


def test_subscribers_get_one_mail_per_quiet_period(settings):
    alice = UserFactory(username="alice", email="alice@example.org")
    AlarmSubscription.objects.create(user=alice, site="BNL", min_severity="warning")
    raise_alarm(Finding("site-no-pilots", "critical", "site", "BNL", "no pilots"), source="rule:x")
    raise_alarm(Finding("site-no-pilots", "critical", "site", "CERN", "no pilots"), source="rule:x")
    raise_alarm(Finding("probe-z", "info", "site", "BNL", "fyi"), source="probe")
    assert mail_alarms() == 1
    assert mail.outbox[0].to == ["alice@example.org"] and "BNL: no pilots" in mail.outbox[0].body
    assert "CERN" not in mail.outbox[0].body and "fyi" not in mail.outbox[0].body
    raise_alarm(Finding("site-no-pilots", "critical", "site", "BNL", "still no pilots"), source="rule:x")
    assert mail_alarms() == 0, "quiet period"
    later = timezone.now() + timedelta(minutes=settings.PANDA_ALARMS["QUIET_MINUTES"] + 1)
    raise_alarm(Finding("site-no-pilots", "critical", "site", "BNL", "still no pilots"), source="rule:x", now=later)
    assert mail_alarms(now=later) == 1


def test_the_home_page_lists_live_alarms_most_severe_first():
    raise_alarm(Finding("probe-a", "warning", "service", "broker", "slow"), source="probe")
    raise_alarm(Finding("site-no-pilots", "critical", "site", "BNL", "no pilots"), source="rule:x")
    alarms = Client().get("/", {"json": ""}).json()["alarms"]
    assert [a["subject"] for a in alarms] == ["BNL", "broker"]
    assert "site-no-pilots: no pilots" in Client().get("/").content.decode()


def test_storage_nearly_full():
    from datasets.models import SiteReplicaTotals

    full = SiteFactory(name="FULL", storage_capacity_gb=10)
    roomy = SiteFactory(name="ROOMY", storage_capacity_gb=100)
    unknown = SiteFactory(name="UNKNOWN")
    for site in (full, roomy, unknown):  # what the catalog holds there (datasets.services.replicas keeps it)
        SiteReplicaTotals.objects.create(site=site, files=1, bytes=9_500_000_000)
    [finding] = rules.storage_nearly_full(timezone.now())
    assert (finding.subject, finding.severity) == ("FULL", "warning")
    assert finding.message == (
        "storage 95% full (9.5 of 10 GB): the catalog's replicas against the declared capacity (no space report)"
    )


@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")  # publishing without running is the point
def test_celery_backlog_and_an_unreachable_broker(settings, monkeypatch):
    from kombu import Connection

    from pandamon.celery import app

    settings.PANDA_ALARMS = {**settings.PANDA_ALARMS, "CELERY_BACKLOG": 2}
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(app.conf.task_default_queue)
    for _ in range(3):
        app.send_task("alarms.snapshot_jobs")  # published to the (test) broker, not run
    try:
        [finding] = rules.celery_backlog(timezone.now())
        assert (finding.category, finding.message) == ("celery-backlog", "3 tasks waiting for a worker")
    finally:
        with app.connection_for_write() as connection:
            connection.default_channel.queue_purge(app.conf.task_default_queue)
    assert rules.celery_backlog(timezone.now()) == []
    # A broker nothing listens for (port 1).
    monkeypatch.setattr(app, "connection_for_read", lambda: Connection("redis://127.0.0.1:1/0", connect_timeout=1))
    [finding] = rules.celery_backlog(timezone.now())
    assert finding.category == "broker-unreachable"

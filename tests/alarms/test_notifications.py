"""Email notifications: opt-in, one digest per user per run however many jobs changed."""

import pytest
from django.core import mail
from django.test import Client

from alarms.models import NotificationPreference, SentNotification
from alarms.services.notifications import send_job_notifications
from jobs.choices import JobStatus
from jobs.services import state

from ..factories import JobFactory, UserFactory

pytestmark = pytest.mark.django_db
S = JobStatus


def run_to(job, *states):
    for new in states:
        state.transition(job, new, actor="test")


def test_one_digest_per_user_however_many_jobs_ended():
    alice = UserFactory(username="alice", email="alice@example.org")
    NotificationPreference.objects.create(user=alice, on_finish=True, on_failure=True)
    jobs = [JobFactory(owner=alice, status=S.RUNNING, task_id=77) for _ in range(30)]
    for job in jobs[:27]:
        run_to(job, S.HOLDING, S.FINISHED)
    for job in jobs[27:]:
        state.transition(job, S.FAILED, actor="test")

    assert send_job_notifications(lag_seconds=0) == 1
    [message] = mail.outbox
    assert message.to == ["alice@example.org"]
    assert message.subject == "PanDA: 27 jobs finished, 3 jobs failed"
    assert "task 77: 27 finished (PandaID" in message.body and "and 22 more" in message.body
    assert "task 77: 3 failed" in message.body
    assert "/jobs/?produsername=alice" in message.body
    assert send_job_notifications(lag_seconds=0) == 0, "events are mailed once"
    assert SentNotification.objects.get().events == 30


def test_nothing_is_sent_without_opting_in_and_only_what_was_asked():
    bob = UserFactory(username="bob", email="bob@example.org")
    carol = UserFactory(username="carol", email="carol@example.org")
    NotificationPreference.objects.create(user=carol, on_failure=True, email="carol@lab.example.org")
    run_to(JobFactory(owner=bob, status=S.RUNNING), S.FAILED)
    run_to(JobFactory(owner=carol, status=S.SENT), S.RUNNING, S.HOLDING, S.FINISHED)
    run_to(JobFactory(owner=carol, status=S.RUNNING), S.FAILED)

    assert send_job_notifications(lag_seconds=0) == 1
    [message] = mail.outbox
    assert message.to == ["carol@lab.example.org"] and message.subject == "PanDA: 1 job failed"


def test_start_notifications_count_jobs_that_began_running():
    dave = UserFactory(username="dave", email="dave@example.org")
    NotificationPreference.objects.create(user=dave, on_start=True)
    run_to(JobFactory(owner=dave, status=S.SENT), S.STARTING, S.RUNNING)
    run_to(JobFactory(owner=dave, status=S.SENT), S.RUNNING)
    send_job_notifications(lag_seconds=0)
    assert mail.outbox[0].subject == "PanDA: 2 jobs started"


def test_a_mail_server_failure_keeps_the_events_for_the_next_run(settings):
    erin = UserFactory(username="erin", email="erin@example.org")
    NotificationPreference.objects.create(user=erin, on_failure=True)
    run_to(JobFactory(owner=erin, status=S.RUNNING), S.FAILED)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # nothing listens there
    with pytest.raises(OSError):
        send_job_notifications(lag_seconds=0)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert send_job_notifications(lag_seconds=0) == 1


def test_users_choose_on_the_preferences_page():
    frank = UserFactory(username="frank", email="frank@example.org")
    client = Client()
    assert client.get("/notifications/").status_code == 302, "log in first"
    client.force_login(frank)
    assert client.get("/notifications/").status_code == 200
    assert client.post("/notifications/", {"on_failure": "on", "email": ""}).status_code == 302
    assert NotificationPreference.objects.get(user=frank).on_failure is True
    response = client.post("/notifications/", {"email": "not-an-address", "json": ""})
    assert response.status_code == 400
    assert NotificationPreference.objects.get(user=frank).email == "", "a bad form changes nothing"

"""Brute-force protection: repeated failed password logins of one user from one address are refused
for a while (429), on the portal's /login/ and on the API's token endpoint alike."""

import html
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from pandamon import login_throttle
from pandamon.models import LoginThrottle

from .factories import UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "right-password-123"


@pytest.fixture
def alice(settings):
    settings.PANDA = {**settings.PANDA, "LOGIN_MAX_FAILURES": 3, "LOGIN_WINDOW_SECONDS": 600,
                      "LOGIN_LOCK_SECONDS": 900}  # fmt: skip
    user = UserFactory(username="alice")
    user.set_password(PASSWORD)
    user.save()
    return user


def page_login(password, address="10.0.0.1"):
    return Client(REMOTE_ADDR=address).post("/login/", {"username": "alice", "password": password})


def token_login(password, address="10.0.0.1"):
    return Client(REMOTE_ADDR=address).post("/api/v1/auth/token", {"username": "alice", "password": password})


@pytest.mark.parametrize("login", [page_login, token_login], ids=["page", "token"])
def test_the_limit_locks_the_pair_even_for_the_right_password(alice, login):
    for _ in range(3):
        assert login("wrong").status_code in (200, 400)  # the form re-rendered / the API's 400
    refused = login(PASSWORD)
    assert refused.status_code == 429
    assert "too many failed logins for 'alice' from 10.0.0.1" in html.unescape(refused.content.decode())
    # Another address is not locked: nobody can lock a user out from elsewhere.
    assert login(PASSWORD, address="10.0.0.2").status_code in (200, 302)


def test_the_lock_ends_and_a_success_clears_the_count(alice):
    for _ in range(3):
        token_login("wrong")
    LoginThrottle.objects.update(locked_until=timezone.now() - timedelta(seconds=1))
    assert token_login(PASSWORD).status_code == 200
    assert not LoginThrottle.objects.exists()


def test_failures_outside_the_window_start_a_new_count(alice):
    token_login("wrong")
    token_login("wrong")
    LoginThrottle.objects.update(first_failure_at=timezone.now() - timedelta(seconds=601))
    token_login("wrong")  # the first of a new window
    assert LoginThrottle.objects.get().failures == 1
    assert token_login(PASSWORD).status_code == 200


def test_the_page_shows_why_it_refuses(alice):
    for _ in range(3):
        page_login("wrong")
    page = page_login(PASSWORD).content.decode()
    assert "too many failed logins" in page and "try again in" in page


def test_a_successful_page_login_still_logs_in(alice):
    response = page_login(PASSWORD)
    assert response.status_code == 302
    token = token_login(PASSWORD)
    assert token.status_code == 200 and len(token.json()["token"]) == 40


def test_the_service_counts_per_pair():
    now = timezone.now()
    for _ in range(5):
        login_throttle.record_failure("bob", "1.2.3.4", now=now)
    with pytest.raises(login_throttle.TooManyFailures):
        login_throttle.check("bob", "1.2.3.4", now=now)
    login_throttle.check("bob", "1.2.3.5", now=now)
    login_throttle.check("bob", "1.2.3.4", now=now + timedelta(minutes=16))

"""Brute-force protection for password logins: the portal's /login/ and the API's token endpoint.

Failures are counted per user name and client address in the database, so every web host and
worker shares the count. After PANDA_LOGIN_MAX_FAILURES failures within PANDA_LOGIN_WINDOW_SECONDS
that pair is refused for PANDA_LOGIN_LOCK_SECONDS (429), even with the right password; a success
clears the count. Keying on the pair, not the user alone, means an attacker cannot lock a user out
from elsewhere; a distributed guess against one account is slowed per address only. Behind a proxy
REMOTE_ADDR is the proxy's: the deployment must pass the client's address (docs/deploy.md).
"""

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from .errors import ServiceError
from .models import LoginThrottle


class TooManyFailures(ServiceError):
    status_code = 429


def _limits():
    panda = settings.PANDA
    return (panda["LOGIN_MAX_FAILURES"], timedelta(seconds=panda["LOGIN_WINDOW_SECONDS"]),
            timedelta(seconds=panda["LOGIN_LOCK_SECONDS"]))  # fmt: skip


def client_address(request):
    return (request.META.get("REMOTE_ADDR") or "unknown")[:45]


def check(username, address, *, now=None):
    """Raise TooManyFailures while the pair is locked."""
    now = now or timezone.now()
    locked_until = (
        LoginThrottle.objects.filter(username=username[:150], address=address)
        .values_list("locked_until", flat=True)
        .first()
    )
    if locked_until and locked_until > now:
        wait = int((locked_until - now).total_seconds()) + 1
        raise TooManyFailures(f"too many failed logins for {username[:150]!r} from {address}: try again in {wait} s")


def record_failure(username, address, *, now=None):
    """Count a failed login; the count that reaches the limit locks the pair."""
    now = now or timezone.now()
    max_failures, window, lock = _limits()
    with transaction.atomic():
        row = _locked_row(username[:150], address, now)
        if now - row.first_failure_at > window:
            row.failures, row.first_failure_at = 0, now
        row.failures += 1
        if row.failures >= max_failures:
            row.locked_until, row.failures, row.first_failure_at = now + lock, 0, now
        row.save(update_fields=["failures", "first_failure_at", "locked_until"])


def _locked_row(username, address, now):
    try:
        with transaction.atomic():
            LoginThrottle.objects.get_or_create(username=username, address=address, defaults={"first_failure_at": now})
    except IntegrityError:  # another request made the row first
        pass
    return LoginThrottle.objects.select_for_update().get(username=username, address=address)


def record_success(username, address):
    LoginThrottle.objects.filter(username=username[:150], address=address).delete()

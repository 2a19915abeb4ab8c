"""Test settings: the project settings plus what makes tests fast and deterministic."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key")
os.environ.setdefault("PANDAMON_VAR_DIR", os.path.join(os.path.dirname(os.path.dirname(__file__)), "var", "test"))

from pandamon.settings import *  # noqa: E402,F403
from pandamon.settings import DATABASES, PANDA, PANDA_ALARMS, VAR_DIR  # noqa: E402

# Service tests see site status changes at once.
PANDA["PILOT_AUTH_CACHE_SECONDS"] = 0
PANDA["RUNNING_COUNT_CACHE_SECONDS"] = 0
PANDA["PILOT_CONTACT_FLUSH_SECONDS"] = 0
PANDA_ALARMS["STATUS_CACHE_SECONDS"] = 0
# Tests receive callbacks on loopback HTTP servers.
PANDA["CALLBACK_ALLOW_PRIVATE"] = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# on_commit callbacks run tasks inline; live tests start a real Celery worker instead.
CELERY_TASK_ALWAYS_EAGER = True
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not :memory:, so live-server tests can share the test database with subprocesses.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}

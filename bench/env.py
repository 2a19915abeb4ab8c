"""Process environment shared by the bench driver, the gunicorn it starts and the profiler."""

import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/pandamon_bench"


def configure(database_url):
    """Set the variables pandamon.settings reads; gunicorn inherits them."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    # Production-like: DEBUG off (no query log, no debug pages), which requires a secret key.
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-" + secrets.token_urlsafe(32))
    # Persistent connections: pilots call many times per second; reconnecting would dominate.
    os.environ["DATABASE_CONN_MAX_AGE"] = "600"


def setup_django(database_url):
    configure(database_url)
    import django

    django.setup()

"""Settings for benchmark servers: the production settings plus the bench-only URLs."""

from pandamon.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"

"""A tiny per-process cache with a time-to-live.

The pilot endpoints are the hottest path of the system; values that may be a few
seconds stale (pilot credentials, site flags, a site's running-job count) are
cached per web process instead of queried on every call.
"""

import time


class TtlCache:
    def __init__(self, ttl_seconds):
        """`ttl_seconds`: a number or a callable returning one (read at each miss, so settings can change)."""
        self._ttl = ttl_seconds
        self._items = {}

    def get(self, key, loader):
        now = time.monotonic()
        hit = self._items.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = loader()
        ttl = self._ttl() if callable(self._ttl) else self._ttl
        if ttl > 0:
            self._items[key] = (now + ttl, value)
        return value

    def clear(self):
        self._items.clear()

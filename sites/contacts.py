"""Pilot contact counters, buffered per process.

Every getJob and updateJob counts as a pilot contact of its site. Writing the
counters on every call cost a third of getJob's database time and made pilots
of one site queue on the PilotActivity row, so each web process adds them up in
memory and writes them at most every PANDA["PILOT_CONTACT_FLUSH_SECONDS"]
(default 2 s) and when the process exits. "Last pilot contact" is therefore at
most that much behind; counts of a process that is killed outright are lost.
"""

import atexit
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from .models import PilotActivity


@dataclass
class _Pending:
    last_contact_at: object = None
    last_node: str = ""
    last_getjob_at: object = None
    last_job_sent_at: object = None
    last_update_at: object = None
    getjob_requests: int = 0
    getjob_empty: int = 0
    jobs_sent: int = 0
    update_requests: int = 0

    def as_update(self):
        values = {"last_contact_at": self.last_contact_at, "last_node": self.last_node}
        for name in ("last_getjob_at", "last_job_sent_at", "last_update_at"):
            if getattr(self, name) is not None:
                values[name] = getattr(self, name)
        for name in ("getjob_requests", "getjob_empty", "jobs_sent", "update_requests"):
            if getattr(self, name):
                values[name] = F(name) + getattr(self, name)
        return values


class ContactBuffer:
    def __init__(self):
        self._pending = {}
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()

    def record(self, *, site_id, node, getjob=False, jobs_sent=0, update=False):
        now = timezone.now()
        with self._lock:
            pending = self._pending.setdefault(site_id, _Pending())
            pending.last_contact_at, pending.last_node = now, (node or "")[:128]
            if getjob:
                pending.last_getjob_at = now
                pending.getjob_requests += 1
                pending.jobs_sent += jobs_sent
                pending.getjob_empty += 0 if jobs_sent else 1
                pending.last_job_sent_at = now if jobs_sent else pending.last_job_sent_at
            if update:
                pending.last_update_at = now
                pending.update_requests += 1
        if time.monotonic() - self._last_flush >= settings.PANDA["PILOT_CONTACT_FLUSH_SECONDS"]:
            self.flush()

    def flush(self):
        with self._lock:
            pending, self._pending = self._pending, {}
            self._last_flush = time.monotonic()
        for site_id in sorted(pending):  # a fixed order: concurrent flushes cannot deadlock
            values = pending[site_id].as_update()
            if not PilotActivity.objects.filter(site_id=site_id).update(**values):
                PilotActivity.objects.get_or_create(site_id=site_id)
                PilotActivity.objects.filter(site_id=site_id).update(**values)


buffer = ContactBuffer()


def _flush_at_exit():
    try:
        buffer.flush()
    except Exception:  # noqa: BLE001 - the database may already be gone at interpreter exit
        pass


atexit.register(_flush_at_exit)

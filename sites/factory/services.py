"""Writes of the pilot factory: factory rows, pilot rows and their states, pilot -> job links.

Pilot states move only forward (submitted -> running -> finished/failed/lost), and every move
is a conditional UPDATE on the state it starts from: the factory's cycle and the pilot's own
reports (updateWorkerPilotStatus) run in different processes, and whichever comes second
must not undo the other. The one way back is lost -> running: a pilot declared lost that
then reports is plainly alive.
"""

import re
import signal
import uuid
from collections import defaultdict

from django.db import transaction
from django.db.models import Count, F, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from pandamon.errors import Conflict, InvalidInput, NotFound
from sites.models import Pilot, PilotFactory, PilotJob, PilotState
from sites.services import pilot_site, record_pilot_contact

from .selectors import factory_is_operating
from .wrapper import WRAPPER_EXIT_CODES

ACTIVE = (PilotState.SUBMITTED, PilotState.RUNNING)
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# The pilot's exit codes (pilot/__main__.py) and the wrapper's own (sites/factory/wrapper.py).
EXIT_REASONS = {
    0: "normal end",
    1: "unexpected pilot error (see the pilot log)",
    2: "bad pilot command line or unreadable credential file",
    3: "server unreachable",
    4: "pilot credential refused by the server",
    5: "the server rejected the pilot's getJob",
    **WRAPPER_EXIT_CODES,
}
WORKER_STATUSES = ("started", "running", "finished")
MAX_EXIT_CODE = 100_000  # far beyond any exit status; keeps the column's integer range safe
MAX_JOBS_RUN = 10_000_000


def exit_reason(code):
    if code is None:
        return ""
    if code > 128:
        try:
            return f"stopped by {signal.Signals(code - 128).name}"
        except ValueError:
            return f"exit code {code}"
    if code < 0:
        return f"killed by signal {-code}"
    return EXIT_REASONS.get(code, f"exit code {code}")


# ---------------------------------------------------------------- factories


def check_factory_name(name):
    if not NAME_PATTERN.fullmatch(name or ""):
        raise InvalidInput("a factory name is 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit")


@transaction.atomic
def register_factory(*, name, host, pid, plugin, sites, config, period_s, version, now=None):
    """Create or take over the factory row `name` for this process; Conflict when another host runs it."""
    check_factory_name(name)
    now = now or timezone.now()
    factory = PilotFactory.objects.select_for_update().filter(name=name).first()
    if factory is not None and factory.host != host and factory_is_operating(factory, now):
        seen = factory.last_cycle_at or factory.started_at
        raise Conflict(f"factory {name!r} is operating on {factory.host} (last seen {seen:%Y-%m-%d %H:%M:%S} UTC)")
    values = {"host": host[:128], "pid": pid, "plugin": plugin, "config": config, "period_s": period_s,
              "version": version, "started_at": now, "stopped_at": None, "last_error": ""}  # fmt: skip
    factory, _ = PilotFactory.objects.update_or_create(name=name, defaults=values)
    factory.sites.set(sites)
    return factory


def record_cycle(factory, *, now, errors, decisions, linked_until):
    PilotFactory.objects.filter(pk=factory.pk).update(
        last_cycle_at=now, cycles=F("cycles") + 1, last_error="; ".join(errors)[:1000],
        last_decisions=decisions, linked_until=linked_until,
    )  # fmt: skip


def stop_factory(factory, *, now=None):
    PilotFactory.objects.filter(pk=factory.pk).update(stopped_at=now or timezone.now())


# ---------------------------------------------------------------- pilots, from the factory


def new_pilot(*, factory, site, now=None):
    return Pilot.objects.create(id=uuid.uuid4(), factory=factory, site=site, plugin=factory.plugin,
                                submitted_at=now or timezone.now())  # fmt: skip


def pilot_submitted(pilot, batch_id):
    # Only the batch id: the pilot may already have reported that it runs.
    Pilot.objects.filter(pk=pilot.pk).update(batch_id=batch_id[:80])


def submission_failed(pilot, message, *, now=None):
    _move(pilot.pk, ACTIVE, state=PilotState.FAILED, ended_at=now or timezone.now(),
          exit_reason=f"submission failed: {message}"[:500])  # fmt: skip


def pilot_started(pilot_id, *, now=None):
    """The batch system runs the pilot (it may not have called the server yet)."""
    return _move(pilot_id, (PilotState.SUBMITTED,), state=PilotState.RUNNING, started_at=now or timezone.now())


def pilot_ended(pilot_id, *, exit_code, reason, lost=False, now=None):
    """The pilot left the batch system (or was cancelled) without its own final report."""
    if lost:
        state = PilotState.LOST
    else:
        state = PilotState.FINISHED if exit_code == 0 else PilotState.FAILED
    return _move(pilot_id, ACTIVE, state=state, ended_at=now or timezone.now(), exit_code=exit_code,
                 exit_reason=reason[:500])  # fmt: skip


def _move(pilot_id, from_states, **values):
    return bool(Pilot.objects.filter(pk=pilot_id, state__in=from_states).update(**values))


def link_jobs(factory, rows, *, now=None):
    """Record which of the factory's pilots ran which jobs; count them and take their updates as contacts.

    `rows` are (pandaid, pilot_id, pilot_updated, modification_time) of jobs whose updateJob named a pilot."""
    now = now or timezone.now()
    by_pilot = defaultdict(list)
    for pandaid, pilot_id, pilot_updated, modified in rows:
        try:
            # pilot3 reports "<GTAG>|<batch type>|<version>…"; the factory sets its GTAG to the pilot id.
            by_pilot[uuid.UUID(pilot_id.split("|", 1)[0])].append((pandaid, pilot_updated, modified))
        except ValueError:
            continue  # not one of ours (a pilot this server's factories did not start)
    ours = set(Pilot.objects.filter(factory=factory, pk__in=list(by_pilot)).values_list("pk", flat=True))
    known = set(PilotJob.objects.filter(pilot_id__in=ours).values_list("pilot_id", "pandaid"))
    links = [PilotJob(pilot_id=pilot_id, pandaid=pandaid, linked_at=now)
             for pilot_id in ours for pandaid, _, _ in by_pilot[pilot_id] if (pilot_id, pandaid) not in known]  # fmt: skip
    PilotJob.objects.bulk_create(links, ignore_conflicts=True)  # a concurrent cycle may have linked some
    counts = dict(PilotJob.objects.filter(pilot_id__in=ours).values_list("pilot_id").annotate(n=Count("*")).order_by())
    for pilot_id in ours:
        values = {"jobs_run": Greatest("jobs_run", Value(counts.get(pilot_id, 0)))}
        contacts = [modified for _, pilot_updated, modified in by_pilot[pilot_id] if pilot_updated]
        if contacts:
            latest = Value(min(max(contacts), now))
            values["last_contact_at"] = Greatest(Coalesce("last_contact_at", latest), latest)
        Pilot.objects.filter(pk=pilot_id).update(**values)
    return len(links)


# ---------------------------------------------------------------- pilots, from their own reports


def report_worker_status(*, token, worker_id, status, site_name="", factory_name="", node="", exit_code=None,
                         jobs_run=None, reason="", now=None):  # fmt: skip
    """updateWorkerPilotStatus: a pilot says it started or finished. Returns a short message.

    Refusals (unknown worker, wrong site or factory, bad status, a credential not bound to
    the pilot's site) raise before anything is written."""
    if status not in WORKER_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(WORKER_STATUSES)}, got {status[:40]!r}")
    if exit_code is not None and not -MAX_EXIT_CODE <= exit_code <= MAX_EXIT_CODE:
        raise InvalidInput(f"exitCode must be between -{MAX_EXIT_CODE} and {MAX_EXIT_CODE}")
    if jobs_run is not None and not 0 <= jobs_run <= MAX_JOBS_RUN:
        raise InvalidInput(f"jobsRun must be between 0 and {MAX_JOBS_RUN}")
    pilot = _reported_pilot(worker_id, site_name, factory_name)
    pilot_site(site_name=pilot.site.name, token=token)
    now = now or timezone.now()
    node = node[:128]
    if status == "finished":
        message = _pilot_finished(pilot, now, node, exit_code, jobs_run, reason)
    else:
        message = _pilot_running(pilot, now, node)
    record_pilot_contact(site=pilot.site, node=node)
    return message


def _reported_pilot(worker_id, site_name, factory_name):
    try:
        pilot_id = uuid.UUID(str(worker_id))
    except ValueError:
        raise InvalidInput(
            f"workerID must be a pilot id issued by a factory of this server, got {worker_id!r:.60}"
        ) from None
    pilot = Pilot.objects.select_related("site", "factory").filter(pk=pilot_id).first()
    if pilot is None:
        raise NotFound(f"unknown worker {pilot_id}")
    if site_name and site_name != pilot.site.name:
        raise InvalidInput(f"worker {pilot_id} was submitted to site {pilot.site.name}, not {site_name[:64]}")
    if factory_name and factory_name != pilot.factory.name:
        raise InvalidInput(f"worker {pilot_id} belongs to factory {pilot.factory.name}, not {factory_name[:64]}")
    return pilot


def _pilot_running(pilot, now, node):
    node_value = node or F("node")
    if _move(pilot.pk, ACTIVE, state=PilotState.RUNNING, started_at=Coalesce("started_at", Value(now)),
             last_contact_at=now, node=node_value):  # fmt: skip
        return "running"
    if _move(pilot.pk, (PilotState.LOST,), state=PilotState.RUNNING, last_contact_at=now, node=node_value,
             started_at=Coalesce("started_at", Value(now)), ended_at=None, exit_reason=""):  # fmt: skip
        return "running again (it had been declared lost)"
    return "ignored: the pilot has ended already"


def _pilot_finished(pilot, now, node, exit_code, jobs_run, reason):
    state = PilotState.FINISHED if exit_code in (None, 0) else PilotState.FAILED
    values = {"state": state, "ended_at": now, "last_contact_at": now, "exit_code": exit_code,
              "exit_reason": (reason or exit_reason(exit_code))[:500], "node": node or F("node"),
              "started_at": Coalesce("started_at", Value(now))}  # fmt: skip
    if jobs_run is not None:
        values["jobs_run"] = Greatest("jobs_run", Value(jobs_run))
    if _move(pilot.pk, (*ACTIVE, PilotState.LOST), **values):
        return state
    return "ignored: the pilot has ended already"

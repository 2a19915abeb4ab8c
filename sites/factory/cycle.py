"""One factory cycle, and the loop that repeats it.

Each cycle, in this order (so that the decisions see fresh counts):
1. ask the plugin what became of the live pilots (ended, started, held);
2. link the jobs that pilots reported (Job.pilot_id) to them, which counts jobs_run and
   refreshes their last contact;
3. declare lost (and cancel) pilots that never started or stopped contacting the server;
4. per site, decide how many pilots to submit (decide.py) and submit them.
A failing batch command is recorded in the pilot's or the factory's error and retried next
cycle; it never stops the loop.
"""

import logging
import socket
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import timedelta

from django.db import close_old_connections
from django.utils import timezone

from sites.models import PilotState, Site

from . import VERSION, decide, demand, selectors, services
from .plugins import ENDED, HELD, QUEUED, RUNNING, PilotSpec, PluginError

logger = logging.getLogger(__name__)

# A pilot row without a batch id this old: the factory stopped between creating it and submitting.
SUBMIT_GRACE = timedelta(minutes=10)
# Jobs are linked from their modification time; the margin covers updates committed late.
LINK_MARGIN = timedelta(minutes=2)
FIRST_LINK_WINDOW = timedelta(days=1)


@dataclass(frozen=True)
class FactoryConfig:
    name: str
    site_names: tuple[str, ...]
    plugin: str
    server: str
    token: str | None = field(default=None, repr=False)
    pilot_args: tuple[str, ...] = ("--max-idle-polls", "1")
    caps: decide.Caps = decide.Caps()
    max_total: int = 0
    period_s: int = 60
    start_timeout_s: int = 20 * 60
    contact_timeout_s: int = 3 * 3600
    queue_timeout_s: int = 24 * 3600
    site_storage: bool = True  # give pilots --storage-dir <the site's storage endpoint>

    def as_json(self):
        """The configuration the scheduler page shows (never the credential)."""
        values = asdict(self)
        values.pop("token")
        values["has_credential"] = bool(self.token)
        return values


def _span(seconds):
    return f"{seconds // 3600} h" if seconds >= 3600 and seconds % 3600 == 0 else f"{seconds // 60} min"


class Factory:
    def __init__(self, config, plugin, *, host=None, clock=timezone.now):
        self.config = config
        self.plugin = plugin
        self.host = host or socket.gethostname()
        self.clock = clock
        self.row = None

    def start(self, pid=0):
        sites = list(Site.objects.filter(name__in=self.config.site_names))
        self.row = services.register_factory(
            name=self.config.name, host=self.host, pid=pid, plugin=self.config.plugin, sites=sites,
            config=self.config.as_json(), period_s=self.config.period_s, version=VERSION, now=self.clock(),
        )  # fmt: skip
        return self.row

    def stop(self):
        if self.row is not None:
            services.stop_factory(self.row, now=self.clock())

    def cycle(self):
        """Run one cycle; returns what it did (also logged, and kept on the factory row)."""
        now, errors = self.clock(), []
        pilots, ended = self._followed(selectors.live_pilots(self.row), now)
        batch = self._poll(pilots, errors)
        ended += self._apply_batch_states(pilots, batch, now, errors) if batch is not None else 0
        linked = self._link(now)
        lost = self._timeouts(batch, now, errors)
        decisions = self._submit_all(now, errors)
        services.record_cycle(self.row, now=now, errors=errors, decisions=decisions, linked_until=now)
        self.row.linked_until = now
        submitted = sum(decision["submitted"] for decision in decisions.values())
        return {"submitted": submitted, "ended": ended, "lost": lost, "linked": linked, "errors": errors,
                "decisions": decisions}  # fmt: skip

    # ------------------------------------------------------------ 1. what became of the pilots

    def _followed(self, pilots, now):
        """The pilots this factory's plugin can follow; (pilots, how many others it gave up as lost).

        A factory restarted with another plugin cannot ask the old batch system about its old pilots."""
        plugin = self.config.plugin
        ended = 0
        for pilot in pilots:
            if pilot.plugin != plugin:
                reason = f"submitted through {pilot.plugin}; the factory now uses {plugin} and cannot follow it"
                ended += services.pilot_ended(pilot.pk, exit_code=None, reason=reason, lost=True, now=now)
        return [pilot for pilot in pilots if pilot.plugin == plugin], ended

    def _poll(self, pilots, errors):
        jobs = {pilot.batch_id: str(pilot.id) for pilot in pilots if pilot.batch_id}
        if not jobs:
            return {}
        try:
            return self.plugin.status(jobs)
        except PluginError as error:
            errors.append(f"batch status: {error}")
            return None

    def _apply_batch_states(self, pilots, batch, now, errors):
        ended = 0
        for pilot in pilots:
            if not pilot.batch_id:
                if now - pilot.submitted_at > SUBMIT_GRACE:
                    ended += services.pilot_ended(pilot.pk, exit_code=None, lost=True, now=now,
                                                  reason="its submission never completed")  # fmt: skip
                continue
            state = batch.get(pilot.batch_id)
            if state is None or state.state == ENDED:
                ended += self._ended(pilot, state, now)
            elif state.state == RUNNING and pilot.state == PilotState.SUBMITTED:
                services.pilot_started(pilot.pk, now=now)
            elif state.state == HELD:
                self._cancel(pilot, errors)
                ended += services.pilot_ended(pilot.pk, exit_code=None, now=now,
                                              reason=f"held by the batch system ({state.detail}): cancelled")  # fmt: skip
        return ended

    def _ended(self, pilot, state, now):
        detail = state.detail if state and state.detail else "gone from the batch system"
        if state is not None and state.exit_code is not None:
            reason = f"{services.exit_reason(state.exit_code)} ({detail}); no final report from the pilot"
            return services.pilot_ended(pilot.pk, exit_code=state.exit_code, reason=reason, now=now)
        if pilot.last_contact_at is None:
            reason = f"{detail} before the pilot contacted the server"
        else:
            reason = f"{detail} without the pilot's final report"
        return services.pilot_ended(pilot.pk, exit_code=None, reason=reason, lost=True, now=now)

    # ------------------------------------------------------------ 2. jobs the pilots ran

    def _link(self, now):
        since = self.row.linked_until - LINK_MARGIN if self.row.linked_until else now - FIRST_LINK_WINDOW
        site_ids = list(self.row.sites.values_list("pk", flat=True))
        return services.link_jobs(self.row, demand.jobs_with_pilot_ids(site_ids, since), now=now)

    # ------------------------------------------------------------ 3. pilots that never started or went silent

    def _timeouts(self, batch, now, errors):
        lost = 0
        for pilot in selectors.live_pilots(self.row):
            state = (batch or {}).get(pilot.batch_id)
            reason = self._overdue(pilot, state, now)
            if reason:
                self._cancel(pilot, errors)
                lost += services.pilot_ended(pilot.pk, exit_code=None, reason=reason, lost=True, now=now)
        return lost

    def _overdue(self, pilot, state, now):
        config = self.config
        if pilot.state == PilotState.SUBMITTED:
            waited = (now - pilot.submitted_at).total_seconds()
            if state and state.state == QUEUED and config.queue_timeout_s and waited > config.queue_timeout_s:
                return f"still queued after {_span(config.queue_timeout_s)}: cancelled"
            return None
        if pilot.last_contact_at is None:
            silent = (now - (pilot.started_at or pilot.submitted_at)).total_seconds()
            if silent > config.start_timeout_s:
                return f"no contact within {_span(config.start_timeout_s)} of starting: cancelled"
            return None
        if (now - pilot.last_contact_at).total_seconds() > config.contact_timeout_s:
            return f"no contact for {_span(config.contact_timeout_s)}: cancelled"
        return None

    def _cancel(self, pilot, errors):
        if not pilot.batch_id:
            return
        try:
            self.plugin.cancel(pilot.batch_id, str(pilot.id))
        except PluginError as error:
            errors.append(f"cancel {pilot.batch_id}: {error}")

    # ------------------------------------------------------------ 4. new pilots

    def _submit_all(self, now, errors):
        sites = list(self.row.sites.all())
        live = selectors.live_counts(self.row)
        activated = demand.activated_jobs(sites)
        held = demand.held_jobs([site.pk for site in sites])
        # The sites with the fewest pilots first: they get the first share of a total cap.
        sites.sort(key=lambda site: (sum(live.get(site.pk, Counter()).values()), site.name))
        loads = [self._load(site, live.get(site.pk, Counter()), activated, held) for site in sites]
        wanted = [decide.pilots_to_submit(load, self.config.caps) for load in loads]
        room = decide.total_room(self.config.max_total, sum(sum(counts.values()) for counts in live.values()))
        shares = decide.share_room([decision.submit for decision in wanted], room)
        decisions = {}
        for site, load, decision, share in zip(sites, loads, wanted, shares, strict=True):
            reason = decision.reason if share == decision.submit else "factory's total pilot cap reached"
            submitted = self._submit(site, share, now, errors)
            decisions[site.name] = {"submitted": submitted, "wanted": decision.submit, "reason": reason,
                                    "activated": load.activated, "queued": load.queued_pilots,
                                    "running": load.running_pilots}  # fmt: skip
        return decisions

    def _load(self, site, counts, activated, held):
        return decide.SiteLoad(
            status=site.status, activated=activated.get(site.pk, 0), running_jobs=held.get(site.pk, 0),
            max_running_jobs=site.max_running_jobs, queued_pilots=counts[PilotState.SUBMITTED],
            running_pilots=counts[PilotState.RUNNING],
        )  # fmt: skip

    def _submit(self, site, count, now, errors):
        for done in range(count):
            pilot = services.new_pilot(factory=self.row, site=site, now=now)
            try:
                batch_id = self.plugin.submit(self._spec(pilot, site))
            except (PluginError, OSError) as error:
                services.submission_failed(pilot, str(error), now=now)
                errors.append(f"{site.name}: submission failed: {error}")
                return done  # the next cycle tries again
            services.pilot_submitted(pilot, batch_id)
        return count

    def _spec(self, pilot, site):
        args = list(self.config.pilot_args)
        if self.config.site_storage and site.storage_endpoint and "--storage-dir" not in args:
            args += ["--storage-dir", site.storage_endpoint]
        return PilotSpec(pilot_id=str(pilot.id), site=site.name, factory=self.row.name, server=self.config.server,
                         args=tuple(args), token=self.config.token)  # fmt: skip

    # ------------------------------------------------------------ the loop

    def run(self, stop, *, once=False, say=logger.info):
        """Cycle every period until `stop` is set (or once); a failed cycle is logged and retried."""
        while True:
            started = time.monotonic()
            try:
                report = self.cycle()
                say(_summary(report))
            except Exception:  # noqa: BLE001 - the factory must outlive one bad cycle (database restart...)
                logger.exception("factory %s: cycle failed", self.config.name)
                close_old_connections()
            if once or stop.wait(max(0.0, self.config.period_s - (time.monotonic() - started))):
                return


def _summary(report):
    sites = ", ".join(f"{name} +{d['submitted']} ({d['reason']})" for name, d in sorted(report["decisions"].items()))
    text = f"submitted {report['submitted']}, ended {report['ended']}, lost {report['lost']}, linked {report['linked']}"
    text += f" | {sites}"
    return text + (f" | errors: {'; '.join(report['errors'])}" if report["errors"] else "")

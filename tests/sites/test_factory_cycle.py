"""The factory's cycle against the database with an in-memory plugin: what it submits, what it
notices about its pilots, how it survives a failing batch system, how it links jobs to pilots."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.choices import JobStatus
from pandamon.errors import Conflict, InvalidInput
from sites.factory import decide, services
from sites.factory.cycle import Factory, FactoryConfig
from sites.factory.plugins import ENDED, HELD, QUEUED, RUNNING, BatchState, PluginError
from sites.models import Pilot, PilotFactory, PilotJob, PilotState

from ..factories import JobFactory, SiteFactory

pytestmark = pytest.mark.django_db


class FakePlugin:
    """A batch system in memory: submitted pilots wait QUEUED until a test moves them."""

    name = "fake"

    def __init__(self):
        self.specs, self.states, self.cancelled = [], {}, []
        self.fail_submit = self.fail_status = None

    def submit(self, spec):
        if self.fail_submit:
            raise PluginError(self.fail_submit)
        self.specs.append(spec)
        batch_id = f"b{len(self.specs)}"
        self.states[batch_id] = BatchState(QUEUED)
        return batch_id

    def status(self, jobs):
        if self.fail_status:
            raise PluginError(self.fail_status)
        return {batch_id: state for batch_id, state in self.states.items() if batch_id in jobs}

    def cancel(self, batch_id, pilot_id):
        self.cancelled.append(batch_id)
        self.states.pop(batch_id, None)


class Clock:
    def __init__(self):
        self.now = timezone.now()

    def __call__(self):
        return self.now

    def advance(self, **delta):
        self.now += timedelta(**delta)


def make_factory(sites, plugin, clock, **config):
    values = {"name": "f1", "site_names": tuple(site.name for site in sites), "plugin": "fake",
              "server": "http://panda:8000", "caps": decide.Caps(max_queued_per_site=6, max_per_cycle=5)}  # fmt: skip
    factory = Factory(FactoryConfig(**{**values, **config}), plugin, host="submit01", clock=clock)
    factory.start(pid=123)
    return factory


def activated(site, n, **fields):
    return [JobFactory(status=JobStatus.ACTIVATED, computing_site=site, **fields) for _ in range(n)]


def pilots(site=None, state=None):
    queryset = Pilot.objects.all()
    queryset = queryset.filter(site=site) if site else queryset
    return list(queryset.filter(state=state) if state else queryset)


# ---------------------------------------------------------------- decisions in the cycle


def test_sites_with_work_get_pilots_within_the_caps_and_the_rest_none():
    busy = SiteFactory(name="BUSY", storage_endpoint="/data/se/BUSY")
    idle = SiteFactory(name="IDLE")
    down = SiteFactory(name="DOWN", status="offline")
    activated(busy, 12)
    activated(down, 4)
    plugin, clock = FakePlugin(), Clock()
    factory = make_factory([busy, idle, down], plugin, clock)

    report = factory.cycle()
    assert report["submitted"] == 5  # at most 5 per cycle
    assert len(pilots(busy, PilotState.SUBMITTED)) == 5 and not pilots(idle) and not pilots(down)
    decisions = PilotFactory.objects.get(name="f1").last_decisions
    assert decisions["IDLE"]["reason"] == "no activated jobs"
    assert decisions["DOWN"] == {"submitted": 0, "wanted": 0, "reason": "site is offline", "activated": 4,
                                 "queued": 0, "running": 0}  # fmt: skip
    spec = plugin.specs[0]
    assert spec.args == ("--max-idle-polls", "1", "--storage-dir", "/data/se/BUSY")
    assert {pilot.batch_id for pilot in pilots(busy)} == {f"b{n}" for n in range(1, 6)}

    clock.advance(seconds=60)
    assert factory.cycle()["submitted"] == 1  # at most 6 queued per site
    clock.advance(seconds=60)
    assert factory.cycle()["submitted"] == 0


def test_the_site_limit_counts_jobs_held_by_any_pilot():
    site = SiteFactory(name="SMALL", max_running_jobs=4)
    activated(site, 10)
    JobFactory(status=JobStatus.RUNNING, computing_site=site)
    JobFactory(status=JobStatus.SENT, computing_site=site)
    factory = make_factory([site], FakePlugin(), Clock())
    assert factory.cycle()["submitted"] == 2
    assert PilotFactory.objects.get().last_decisions["SMALL"]["reason"] == "site limit of 4 running jobs"


def test_a_test_site_counts_only_test_jobs():
    site = SiteFactory(name="TESTQ", status="test")
    activated(site, 3, prod_source_label="user")
    activated(site, 1, prod_source_label="test")
    factory = make_factory([site], FakePlugin(), Clock())
    assert factory.cycle()["submitted"] == 1


def test_the_total_cap_is_shared_between_sites():
    one, two = SiteFactory(name="ONE"), SiteFactory(name="TWO")
    activated(one, 5)
    activated(two, 5)
    factory = make_factory([one, two], FakePlugin(), Clock(), max_total=3)
    assert factory.cycle()["submitted"] == 3
    assert sorted([len(pilots(one)), len(pilots(two))]) == [1, 2]  # the site with fewer pilots goes first


# ---------------------------------------------------------------- failures of the batch system


def test_a_failing_submission_is_recorded_and_retried_next_cycle():
    site = SiteFactory(name="BNL")
    activated(site, 3)
    plugin, clock = FakePlugin(), Clock()
    plugin.fail_submit = "sbatch exited with 1: Invalid partition name specified"
    factory = make_factory([site], plugin, clock)
    report = factory.cycle()
    assert report["submitted"] == 0
    (failed,) = pilots(site)  # one try per site per cycle
    assert failed.state == PilotState.FAILED and failed.ended_at == clock.now
    assert failed.exit_reason == "submission failed: sbatch exited with 1: Invalid partition name specified"
    assert "BNL: submission failed" in PilotFactory.objects.get().last_error

    plugin.fail_submit = None
    clock.advance(minutes=1)
    assert factory.cycle()["submitted"] == 3
    assert PilotFactory.objects.get().last_error == ""


def test_a_failing_status_command_changes_no_pilot():
    site = SiteFactory(name="BNL")
    activated(site, 1)
    plugin, clock = FakePlugin(), Clock()
    factory = make_factory([site], plugin, clock)
    factory.cycle()
    plugin.states.clear()  # gone from the queue, but the status command fails: nobody can tell
    plugin.fail_status = "squeue exited with 1: Unable to contact slurm controller"
    clock.advance(minutes=1)
    report = factory.cycle()
    assert report["errors"] == ["batch status: squeue exited with 1: Unable to contact slurm controller"]
    assert pilots(site)[0].state == PilotState.SUBMITTED


def test_an_unexpected_error_does_not_stop_the_loop(monkeypatch):
    import threading

    site = SiteFactory(name="BNL")
    factory = make_factory([site], FakePlugin(), Clock())
    calls = []

    def broken():
        calls.append(1)
        raise RuntimeError("database went away")

    monkeypatch.setattr(factory, "cycle", broken)
    factory.run(threading.Event(), once=True)  # logged, not raised
    assert calls == [1]


# ---------------------------------------------------------------- what became of the pilots


def submitted_pilots(n=1, **config):
    site = SiteFactory(name="BNL")
    activated(site, n)
    plugin, clock = FakePlugin(), Clock()
    factory = make_factory([site], plugin, clock, **config)
    factory.cycle()
    return factory, plugin, clock, sorted(pilots(site), key=lambda pilot: pilot.batch_id)


def test_batch_states_move_the_pilots():
    factory, plugin, clock, (started, vanished, crashed, held, reported) = submitted_pilots(5)
    Pilot.objects.filter(pk=reported.pk).update(state=PilotState.FINISHED, exit_code=0)  # it reported its end
    plugin.states = {started.batch_id: BatchState(RUNNING), crashed.batch_id: BatchState(ENDED, exit_code=3,
                     detail="exited with 3"), held.batch_id: BatchState(HELD, detail="held: over memory limit")}  # fmt: skip
    clock.advance(minutes=1)
    report = factory.cycle()
    assert report["ended"] == 3
    states = {pilot.pk: pilot for pilot in Pilot.objects.all()}
    assert (states[started.pk].state, states[started.pk].started_at) == (PilotState.RUNNING, clock.now)
    assert states[vanished.pk].state == PilotState.LOST
    assert states[vanished.pk].exit_reason == "gone from the batch system before the pilot contacted the server"
    assert (states[crashed.pk].state, states[crashed.pk].exit_code) == (PilotState.FAILED, 3)
    assert states[crashed.pk].exit_reason == "server unreachable (exited with 3); no final report from the pilot"
    assert states[held.pk].state == PilotState.FAILED and "held: over memory limit" in states[held.pk].exit_reason
    assert plugin.cancelled == [held.batch_id]
    assert states[reported.pk].state == PilotState.FINISHED  # its own report stands


def test_pilots_that_never_start_or_go_silent_are_lost_and_cancelled():
    factory, plugin, clock, (queued, silent_start, silent_later, fine) = submitted_pilots(
        4, start_timeout_s=600, contact_timeout_s=3600, queue_timeout_s=7200
    )
    for pilot in (silent_start, silent_later, fine):
        plugin.states[pilot.batch_id] = BatchState(RUNNING)
    clock.advance(minutes=1)
    factory.cycle()  # the three start
    Pilot.objects.filter(pk=silent_later.pk).update(last_contact_at=clock.now)
    clock.advance(minutes=11)
    Pilot.objects.filter(pk=fine.pk).update(last_contact_at=clock.now)
    factory.cycle()
    assert Pilot.objects.get(pk=silent_start.pk).exit_reason == "no contact within 10 min of starting: cancelled"
    assert Pilot.objects.get(pk=silent_later.pk).state == PilotState.RUNNING
    clock.advance(minutes=55)
    Pilot.objects.filter(pk=fine.pk).update(last_contact_at=clock.now)
    factory.cycle()
    lost = Pilot.objects.get(pk=silent_later.pk)
    assert (lost.state, lost.exit_reason) == (PilotState.LOST, "no contact for 1 h: cancelled")
    assert Pilot.objects.get(pk=queued.pk).state == PilotState.SUBMITTED  # queued 67 min < 2 h
    clock.advance(minutes=60)
    Pilot.objects.filter(pk=fine.pk).update(last_contact_at=clock.now)
    factory.cycle()
    assert Pilot.objects.get(pk=queued.pk).exit_reason == "still queued after 2 h: cancelled"
    assert Pilot.objects.get(pk=fine.pk).state == PilotState.RUNNING
    assert {silent_start.batch_id, silent_later.batch_id, queued.batch_id} <= set(plugin.cancelled)
    assert fine.batch_id not in plugin.cancelled  # (the lost pilots' replacements waited too long as well)


def test_a_pilot_row_left_without_batch_id_is_lost_after_a_while():
    factory, plugin, clock, (pilot,) = submitted_pilots(1)
    Pilot.objects.filter(pk=pilot.pk).update(batch_id="")
    clock.advance(minutes=11)
    factory.cycle()
    assert Pilot.objects.get(pk=pilot.pk).exit_reason == "its submission never completed"


# ---------------------------------------------------------------- jobs linked to pilots


def test_jobs_that_name_a_pilot_are_linked_and_counted():
    factory, plugin, clock, (first, second) = submitted_pilots(2)
    other_factory_pilot = services.new_pilot(
        factory=PilotFactory.objects.create(name="f2", host="h", plugin="local", version="1", started_at=clock.now),
        site=first.site,
    )
    site = first.site
    now = clock.now
    ran = [JobFactory(status=s, computing_site=site, pilot_id=str(first.pk), modification_time=now)
           for s in (JobStatus.FINISHED, JobStatus.RUNNING)]  # fmt: skip
    JobFactory(
        status=JobStatus.RUNNING, computing_site=site, pilot_id=str(other_factory_pilot.pk), modification_time=now
    )
    JobFactory(
        status=JobStatus.RUNNING, computing_site=site, pilot_id="https://pilot3.log|PR|3.7.1", modification_time=now
    )
    # PanDA's pilot3 started by the factory: pilotID "<GTAG>|<version tag>|<version>", GTAG = our pilot id.
    by_pilot3 = JobFactory(status=JobStatus.RUNNING, computing_site=site, pilot_id=f"{second.pk}|PR|3.7.0.36",
                           modification_time=now)  # fmt: skip
    clock.advance(seconds=30)
    assert factory.cycle()["linked"] == 3
    first = Pilot.objects.get(pk=first.pk)
    assert first.jobs_run == 2 and first.last_contact_at == now  # the running job's update is a contact
    assert set(PilotJob.objects.filter(pilot=first).values_list("pandaid", flat=True)) == {job.pandaid for job in ran}
    assert list(PilotJob.objects.filter(pilot=second).values_list("pandaid", flat=True)) == [by_pilot3.pandaid]
    assert not PilotJob.objects.filter(pilot=other_factory_pilot).exists()  # f2 links its own
    clock.advance(seconds=30)
    assert factory.cycle()["linked"] == 0  # already linked


# ---------------------------------------------------------------- the factory row


def test_a_factory_name_is_taken_only_when_its_holder_is_silent():
    site = SiteFactory(name="BNL")
    clock = Clock()
    make_factory([site], FakePlugin(), clock).cycle()
    with pytest.raises(Conflict, match="operating on submit01"):
        services.register_factory(name="f1", host="submit02", pid=1, plugin="local", sites=[site], config={},
                                  period_s=60, version="1", now=clock.now)  # fmt: skip
    clock.advance(minutes=5)  # three periods without a cycle: silent
    row = services.register_factory(name="f1", host="submit02", pid=1, plugin="local", sites=[site], config={},
                                    period_s=60, version="1", now=clock.now)  # fmt: skip
    assert row.host == "submit02"
    with pytest.raises(InvalidInput):
        services.check_factory_name("bad name; rm -rf")


def test_pilots_of_another_plugin_are_given_up():
    factory, plugin, clock, (pilot,) = submitted_pilots(1)
    Pilot.objects.filter(pk=pilot.pk).update(plugin="condor")  # the factory was restarted with another plugin
    clock.advance(minutes=1)
    assert factory.cycle()["ended"] == 1
    given_up = Pilot.objects.get(pk=pilot.pk)
    assert given_up.state == PilotState.LOST
    assert given_up.exit_reason == "submitted through condor; the factory now uses fake and cannot follow it"

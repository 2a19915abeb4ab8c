"""Whole jobs through the pilot loop, against a stub dispatcher on 127.0.0.1.

The stub only records what the pilot sends and answers like the protocol
says; the end-to-end tests against the real server live elsewhere.
"""

import json
import os
import re
import threading
import time

import pytest

from client.storage import deterministic_pfn
from pilot import errors
from pilot.client import ServerUnreachable
from pilot.loop import Pilot
from pilot.settings import PilotSettings

SITE = "SITE_A"
WRITE_OUTPUT = '#!/bin/sh\necho "running $PANDAID at $PANDA_SITE"\ncat in.root > out1.root\n'


def job_answer(**overrides):
    answer = {
        "StatusCode": 0,
        "PandaID": 4242,
        "jobName": "test_job",
        "transformation": WRITE_OUTPUT,
        "jobPars": "",
        "attemptNr": 1,
        "inFiles": "",
        "GUID": "",
        "fsize": "",
        "checksum": "",
        "outFiles": "out1.root,job.log.tgz",
        "logFile": "job.log.tgz",
        "logGUID": "log-guid-1",
        "destinationDblock": "user.test_sub1",
        "realDatasets": "user.test",
        "maxCpuCount": 0,
        "minRamCount": 0,
        "maxDiskCount": 0,
        "maxWalltime": "NULL",
        "coreCount": 1,
        "currentPriority": 1000,
        "prodSourceLabel": "user",
        "taskID": "NULL",
        "loopingCheck": False,
    }
    answer.update(overrides)
    return answer


class FakeDispatcher:
    """Hands out `jobs` in order, then 'no job'; records every updateJob."""

    def __init__(self, stub, jobs, command=lambda form: "NULL"):
        self.jobs = list(jobs)
        self.command = command
        self.updates = []
        stub.routes["/server/panda/getJob"] = self.get_job
        stub.routes["/server/panda/updateJob"] = self.update_job
        self.stub = stub

    def get_job(self, request):
        if self.jobs:
            return 200, self.jobs.pop(0)
        return 200, {"StatusCode": 20, "errorDialog": f"no activated jobs for site {SITE}"}

    def update_job(self, request):
        self.updates.append(request.form)
        return 200, {"StatusCode": 0, "command": self.command(request.form)}

    @property
    def states(self):
        return [form["state"] for form in self.updates]

    @property
    def final(self):
        return self.updates[-1]


@pytest.fixture
def dirs(tmp_path):
    storage_dir = tmp_path / "storage"
    storage_dir.mkdir()
    (storage_dir / "in.root").write_bytes(b"Wikipedia")
    return tmp_path / "work", storage_dir


def make_pilot(stub, dirs, **overrides):
    workdir, storage_dir = dirs
    os.makedirs(workdir, exist_ok=True)
    options = dict(
        server=stub.url,
        site=SITE,
        node="wn01",
        once=True,
        workdir=str(workdir),
        storage_dir=str(storage_dir),
        heartbeat=60,
        idle_sleep=0.05,
        max_tries=3,
        retry_delay=0.01,
        kill_grace=1.0,
    )
    options.update(overrides)
    return Pilot(PilotSettings(**options))


def test_finished_job_reports_outputs_and_log(stub_server, dirs):
    job = job_answer(inFiles="in.root", GUID="in-guid", fsize="9", checksum="ad:11e60398")
    dispatcher = FakeDispatcher(stub_server, [job])
    pilot = make_pilot(stub_server, dirs, prod_source_label="user")

    pilot.run()

    (getjob,) = stub_server.requests_to("/server/panda/getJob")
    assert getjob.form["siteName"] == getjob.form["computingElement"] == SITE
    assert getjob.form["prodSourceLabel"] == "user" and getjob.form["workingGroup"] == ""
    assert int(getjob.form["mem"]) > 0 and int(getjob.form["diskSpace"]) > 0
    assert dispatcher.states == ["starting", "running", "finished"]
    final = dispatcher.final
    assert (final["jobId"], final["attemptNr"], final["siteName"], final["node"]) == ("4242", "1", SITE, "wn01")
    assert (final["transExitCode"], final["pilotErrorCode"], final["exeErrorCode"]) == ("0", "0", "0")
    assert final["cpuConsumptionUnit"] == "s" and final["nEvents"] == "0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", final["startTime"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", final["endTime"])
    assert "running 4242 at SITE_A" in final["pilotLog"]
    files = json.loads(final["xml"])
    storage_dir = dirs[1]
    assert files["out1.root"]["adler32"] == "11e60398" and files["out1.root"]["fsize"] == 9
    assert files["out1.root"]["surl"] == f"file://{deterministic_pfn(str(storage_dir), 'out1.root')}"
    assert files["job.log.tgz"]["guid"] == "log-guid-1"
    assert files["job.log.tgz"]["surl"] == f"file://{deterministic_pfn(str(storage_dir), 'job.log.tgz')}"
    assert os.path.exists(deterministic_pfn(str(storage_dir), "job.log.tgz"))
    assert not (dirs[0] / "PandaJob_4242").exists()  # cleaned up


def test_failed_payload_reports_exit_code_and_last_stderr_line(stub_server, dirs):
    script = "#!/bin/sh\necho first >&2\necho 'ERROR: bad input' >&2\nexit 3\n"
    dispatcher = FakeDispatcher(stub_server, [job_answer(transformation=script)])

    make_pilot(stub_server, dirs).run()

    final = dispatcher.final
    assert final["state"] == "failed"
    assert (final["transExitCode"], final["exeErrorCode"]) == ("3", "3")
    assert final["exeErrorDiag"] == "ERROR: bad input"
    assert final["pilotErrorCode"] == "0"
    assert "job.log.tgz" in json.loads(final["xml"])  # the log is still staged out


def test_missing_output_after_success(stub_server, dirs):
    dispatcher = FakeDispatcher(stub_server, [job_answer(transformation="/bin/true")])

    make_pilot(stub_server, dirs).run()

    final = dispatcher.final
    assert final["state"] == "failed" and final["transExitCode"] == "0"
    assert final["pilotErrorCode"] == str(errors.MISSINGOUTPUTFILE)
    assert "out1.root" in final["pilotErrorDiag"]


def test_stage_in_checksum_mismatch_fails_before_the_payload(stub_server, dirs):
    job = job_answer(inFiles="in.root", checksum="ad:deadbeef")
    dispatcher = FakeDispatcher(stub_server, [job])

    make_pilot(stub_server, dirs).run()

    assert dispatcher.states == ["starting", "failed"]
    assert dispatcher.final["pilotErrorCode"] == str(errors.GETADMISMATCH)


def test_tobekilled_kills_the_payload(stub_server, dirs):
    dispatcher = FakeDispatcher(
        stub_server,
        [job_answer(transformation="/bin/sleep", jobPars="30")],
        command=lambda form: "tobekilled" if dispatcher.states.count("running") >= 2 else "NULL",
    )
    started = time.monotonic()

    make_pilot(stub_server, dirs, heartbeat=0.2).run()

    assert time.monotonic() - started < 4
    heartbeat = [form for form in dispatcher.updates if form["state"] == "running"][1]
    assert heartbeat["cpuConsumptionUnit"] == "s" and int(heartbeat["maxRSS"]) > 0
    assert "cpuConsumptionTime" in heartbeat
    final = dispatcher.final
    assert final["state"] == "failed"
    assert final["pilotErrorCode"] == "1144"
    assert final["pilotErrorDiag"] == "job killed by the server"
    assert final["transExitCode"] == "143"  # 128 + SIGTERM


def test_alreadydone_stops_without_a_final_update(stub_server, dirs):
    dispatcher = FakeDispatcher(
        stub_server,
        [job_answer(transformation="/bin/sleep", jobPars="30")],
        command=lambda form: "alreadydone" if form["state"] == "running" else "NULL",
    )
    started = time.monotonic()

    make_pilot(stub_server, dirs).run()

    assert time.monotonic() - started < 4
    assert dispatcher.states == ["starting", "running"]


def test_final_update_is_retried_through_server_errors(stub_server, dirs):
    dispatcher = FakeDispatcher(stub_server, [job_answer(transformation="/bin/true", outFiles="job.log.tgz")])
    failures = iter([(503, b"overloaded"), (200, {"StatusCode": 30, "errorDialog": "db"})])

    def flaky_update(request):
        if request.form["state"] in ("finished", "failed"):
            answer = next(failures, None)
            if answer:
                return answer
        return dispatcher.update_job(request)

    stub_server.routes["/server/panda/updateJob"] = flaky_update

    make_pilot(stub_server, dirs).run()

    finals = [r for r in stub_server.requests_to("/server/panda/updateJob") if r.form["state"] == "finished"]
    assert len(finals) == 3
    assert dispatcher.states[-1] == "finished"


def test_pilot_exception_still_reports_failed(stub_server, dirs, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("pilot.jobrun.stage_out_outputs", broken)
    dispatcher = FakeDispatcher(stub_server, [job_answer()])

    make_pilot(stub_server, dirs).run()

    final = dispatcher.final
    assert final["state"] == "failed"
    assert final["pilotErrorCode"] == str(errors.GENERALERROR)
    assert "disk on fire" in final["pilotErrorDiag"]
    assert "job.log.tgz" in json.loads(final["xml"])


def test_inputs_without_storage_dir_fail_stage_in(stub_server, dirs):
    dispatcher = FakeDispatcher(stub_server, [job_answer(inFiles="in.root")])

    make_pilot(stub_server, dirs, storage_dir=None).run()

    assert dispatcher.final["pilotErrorCode"] == str(errors.STAGEINFAILED)


def test_keep_workdir_and_max_jobs(stub_server, dirs):
    jobs = [
        job_answer(PandaID=1, transformation="/bin/true", outFiles=""),
        job_answer(PandaID=2, transformation="/bin/true", outFiles=""),
    ]
    dispatcher = FakeDispatcher(stub_server, jobs)
    pilot = make_pilot(stub_server, dirs, once=False, max_jobs=2, keep_workdir=True)

    pilot.run()

    assert pilot.jobs_run == 2
    assert dispatcher.states == ["starting", "running", "finished"] * 2
    assert (dirs[0] / "PandaJob_1" / "payload.stdout").exists()
    assert (dirs[0] / "PandaJob_2" / "pilot.log").exists()


def test_shutdown_signal_fails_the_running_job(stub_server, dirs):
    import signal

    dispatcher = FakeDispatcher(stub_server, [job_answer(transformation="/bin/sleep", jobPars="30")])
    pilot = make_pilot(stub_server, dirs, once=False)
    threading.Timer(0.5, pilot.on_signal, (signal.SIGTERM, None)).start()

    pilot.run()

    assert pilot.shutdown_signal == signal.SIGTERM
    assert dispatcher.final["pilotErrorCode"] == str(errors.SIGTERM)
    assert len(stub_server.requests_to("/server/panda/getJob")) == 1


def test_undeliverable_final_update_is_kept_and_fatal(stub_server, dirs):
    dispatcher = FakeDispatcher(stub_server, [job_answer(transformation="/bin/true", outFiles="")])

    def down_for_final(request):
        if request.form["state"] in ("finished", "failed"):
            return 503, b"down"
        return dispatcher.update_job(request)

    stub_server.routes["/server/panda/updateJob"] = down_for_final

    with pytest.raises(ServerUnreachable):
        make_pilot(stub_server, dirs).run()

    finals = [r for r in stub_server.requests_to("/server/panda/updateJob") if r.form["state"] == "finished"]
    assert len(finals) == 6  # 2 x --max-tries for the final update
    saved = json.loads((dirs[0] / "PandaJob_4242" / "final_update.json").read_text())
    assert saved["state"] == "finished" and saved["jobId"] == 4242


def test_rejected_final_update_is_kept_and_the_pilot_goes_on(stub_server, dirs):
    dispatcher = FakeDispatcher(stub_server, [job_answer(transformation="/bin/true", outFiles="")])

    def reject_final(request):
        if request.form["state"] in ("finished", "failed"):
            return 400, {"StatusCode": 50, "errorDialog": "bad xml"}
        return dispatcher.update_job(request)

    stub_server.routes["/server/panda/updateJob"] = reject_final

    make_pilot(stub_server, dirs).run()

    assert (dirs[0] / "PandaJob_4242" / "final_update.json").exists()


def test_heartbeats_go_on_while_files_move(stub_server, dirs, http_storage):
    # A slow storage element: every GET and PUT waits. The site's heartbeat timeout must not
    # see a job in stage-in or stage-out as lost, so the pilot heartbeats through both.
    put_input = http_storage.root / "data" / deterministic_pfn("", "in.root").lstrip("/")
    put_input.parent.mkdir(parents=True, exist_ok=True)
    put_input.write_bytes(b"Wikipedia")
    http_storage.delay = 0.8
    job = job_answer(inFiles="in.root", GUID="in-guid", fsize="9", checksum="ad:11e60398", outFiles="out1.root")
    dispatcher = FakeDispatcher(stub_server, [job])
    pilot = make_pilot(stub_server, dirs, storage_dir=f"{http_storage.url}/data", heartbeat=0.2)

    pilot.run()

    states = dispatcher.states
    assert states[-1] == "finished", dispatcher.final.get("pilotErrorDiag")
    first_running = states.index("running")
    assert states[:first_running].count("starting") >= 3, states  # the first, then heartbeats during stage-in
    assert states[first_running:-1].count("running") >= 4, states  # the payload is instant: stage-out's
    assert [method for method, _, _ in http_storage.log if method in ("GET", "PUT")] == ["GET", "PUT", "PUT"]

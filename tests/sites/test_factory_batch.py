"""Batch plugins against recorded command outputs (tests/sites/batch_outputs/): the commands they
build, the scripts they submit, how they read the queue, and how they fail."""

from pathlib import Path

import pytest

from sites.factory.batch import (
    CondorPlugin,
    PBSPlugin,
    SlurmPlugin,
    parse_condor_q,
    parse_condor_submit,
    parse_qstat,
    parse_qsub,
    parse_sbatch,
    parse_squeue,
)
from sites.factory.plugins import ENDED, HELD, QUEUED, RUNNING, Completed, PilotSpec, PluginError, run_command

OUTPUTS = Path(__file__).parent / "batch_outputs"
PILOT_ID = "0b7c8d52-3c1e-4c55-9a57-1f2a3b4c5d6e"


def recorded(name):
    return (OUTPUTS / name).read_text()


class FakeRunner:
    """Answers each command from a recorded output and keeps what it was asked to run."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def __call__(self, argv, *, env=None, timeout=60):
        self.calls.append((argv, env))
        returncode, stdout, stderr = self.answers.pop(0)
        return Completed(returncode, stdout, stderr)


def spec(token="s3cret-token"):
    return PilotSpec(pilot_id=PILOT_ID, site="BNL", factory="f1", server="http://panda.example.org:8000",
                     args=("--max-idle-polls", "1", "--storage-dir", "/data/se BNL"), token=token)  # fmt: skip


# ---------------------------------------------------------------- parsers


def test_parse_sbatch_forms():
    assert parse_sbatch(recorded("sbatch_parsable.out")) == "1"
    assert parse_sbatch(recorded("sbatch_parsable_cluster.out")) == "4243"
    assert parse_sbatch(recorded("sbatch_plain.out")) == "2"
    with pytest.raises(PluginError, match="no job id"):
        parse_sbatch("sbatch: warning: something odd\n")


def test_parse_squeue_pending_and_running():
    states = parse_squeue(recorded("squeue_pending_running.out"))
    assert {job: (state.state, state.detail) for job, state in states.items()} == {
        "3": (QUEUED, "Resources"), "5": (QUEUED, "Priority"), "6": (QUEUED, "Priority"),
        "4": (HELD, "PENDING (JobHeldUser)"), "1": (RUNNING, ""), "2": (RUNNING, ""),
    }  # fmt: skip
    assert parse_squeue("") == {}


def test_parse_squeue_with_ended_jobs():
    states = parse_squeue(recorded("squeue_all_states.out"))
    assert (states["7"].state, states["7"].detail, states["7"].exit_code) == (ENDED, "CANCELLED", None)
    assert (states["1"].state, states["1"].exit_code) == (ENDED, 0)  # COMPLETED
    assert (states["5"].state, states["5"].detail, states["5"].exit_code) == (ENDED, "FAILED", None)
    assert states["3"].state == RUNNING and states["4"].state == HELD


def test_parse_qsub_and_qstat():
    assert parse_qsub(recorded("qsub.out")) == "4807.pbs01.example.org"
    with pytest.raises(PluginError):
        parse_qsub("qsub: would block\n")
    torque = parse_qstat(recorded("qstat_torque.out"))
    assert {job: state.state for job, state in torque.items()} == {
        "4805.pbs01": RUNNING, "4806.pbs01": QUEUED, "4807.pbs01": HELD, "4808.pbs01": ENDED,
        "4809.pbs01": RUNNING, "4810.pbs01": RUNNING,
    }  # fmt: skip
    pbspro = parse_qstat(recorded("qstat_pbspro.out"))
    assert {job: state.state for job, state in pbspro.items()} == {
        "1203.pbspro-serv": RUNNING,
        "1204.pbspro-serv": QUEUED,
    }
    assert parse_qstat("") == {}


def test_parse_condor_submit_and_q():
    assert parse_condor_submit(recorded("condor_submit.out")) == "9876.0"
    with pytest.raises(PluginError, match="expected one job"):
        parse_condor_submit("Submitting job(s)..\n3 job(s) submitted to cluster 12.\n")
    states = parse_condor_q(recorded("condor_q.out"))
    assert states["9876.0"].state == QUEUED and states["9877.0"].state == RUNNING
    assert states["9878.0"].state == HELD and "over memory limit of 2048 megabytes" in states["9878.0"].detail
    assert (states["9879.0"].state, states["9879.0"].exit_code) == (ENDED, 0)
    assert (states["9880.0"].state, states["9880.0"].exit_code) == (ENDED, 3)
    assert (states["9881.0"].state, states["9881.0"].detail) == (ENDED, "removed")


# ---------------------------------------------------------------- Slurm


def test_slurm_submit_builds_the_command_and_the_script(tmp_path):
    runner = FakeRunner((0, recorded("sbatch_parsable.out"), ""))
    plugin = SlurmPlugin(workdir=tmp_path, factory="f1", runner=runner, queue="short", walltime_minutes=90)
    assert plugin.submit(spec()) == "1"
    ((argv, env),) = runner.calls
    script = tmp_path / "submit" / "BNL" / f"pilot-{PILOT_ID}.sh"
    assert argv == ["sbatch", "--parsable", "--job-name=panda-pilot-f1",
                    f"--output={tmp_path}/logs/BNL/pilot-{PILOT_ID}.out", "--export=ALL", "--partition=short",
                    "--time=90", str(script)]  # fmt: skip
    assert env["PANDA_PILOT_TOKEN"] == "s3cret-token"  # through the environment ...
    text = script.read_text()
    assert "s3cret-token" not in text  # ... never in a file
    assert f"export PANDA_PILOT_ID={PILOT_ID} HARVESTER_ID=f1 HARVESTER_WORKER_ID={PILOT_ID} GTAG={PILOT_ID}" in text
    assert ("set -- --server http://panda.example.org:8000 --site BNL --pilot-id "
            f"{PILOT_ID} --max-idle-polls 1 --storage-dir '/data/se BNL'") in text  # fmt: skip
    assert '"$python" -m pilot "$@"' in text and text.startswith("#!/bin/sh\n")
    assert script.stat().st_mode & 0o700 == 0o700


def test_slurm_status_reads_its_own_jobs_by_name(tmp_path):
    runner = FakeRunner((0, recorded("squeue_all_states.out"), ""))
    plugin = SlurmPlugin(workdir=tmp_path, factory="f1", runner=runner)
    states = plugin.status({"3": "a", "5": "b", "9999": "c"})
    assert runner.calls[0][0] == ["squeue", "--noheader", "--states=all", "--name=panda-pilot-f1", "--format=%i|%T|%r"]
    assert set(states) == {"3", "5"}  # 9999 left the queue: absent


def test_slurm_failures_are_plugin_errors_with_the_message(tmp_path):
    plugin = SlurmPlugin(
        workdir=tmp_path, factory="f1", runner=FakeRunner((1, "", recorded("sbatch_bad_partition.err")))
    )
    with pytest.raises(PluginError, match="sbatch exited with 1: .*Invalid partition name specified"):
        plugin.submit(spec())
    plugin.runner = FakeRunner((1, "", recorded("squeue_controller_down.err")))
    with pytest.raises(PluginError, match="Unable to contact slurm controller"):
        plugin.status({"1": "a"})
    plugin.runner = FakeRunner((0, "", ""))
    plugin.cancel("1", "a")
    assert plugin.runner.calls[0][0] == ["scancel", "1"]


def test_submit_without_a_credential_keeps_none_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PANDA_PILOT_TOKEN", "the-factory-own-token")
    runner = FakeRunner((0, recorded("sbatch_plain.out"), ""))
    SlurmPlugin(workdir=tmp_path, factory="f1", runner=runner).submit(spec(token=None))
    assert "PANDA_PILOT_TOKEN" not in runner.calls[0][1]


# ---------------------------------------------------------------- PBS


def test_pbs_submit_and_status(tmp_path):
    runner = FakeRunner((0, recorded("qsub.out"), ""), (0, recorded("qstat_torque.out"), ""))
    plugin = PBSPlugin(workdir=tmp_path, factory="factory-with-a-long-name", runner=runner, queue="batch",
                       walltime_minutes=125, extra=["-A", "atlas"])  # fmt: skip
    assert plugin.submit(spec()) == "4807.pbs01.example.org"
    argv, env = runner.calls[0]
    assert argv == ["qsub", "-N", "pilot-factory-w", "-j", "oe", "-o", f"{tmp_path}/logs/BNL/pilot-{PILOT_ID}.out",
                    "-q", "batch", "-l", "walltime=02:05:00", "-v", "PANDA_PILOT_TOKEN", "-A", "atlas",
                    f"{tmp_path}/submit/BNL/pilot-{PILOT_ID}.sh"]  # fmt: skip
    assert env["PANDA_PILOT_TOKEN"] == "s3cret-token"
    # qstat shows the server part of the id shortened: matched on the sequence number.
    states = plugin.status(
        {"4807.pbs01.example.org": "a", "4806.pbs01.example.org": "b", "4799.pbs01.example.org": "c"}
    )
    assert {job: state.state for job, state in states.items()} == {"4807.pbs01.example.org": HELD,
                                                                  "4806.pbs01.example.org": QUEUED}  # fmt: skip
    assert runner.calls[1][0] == ["qstat"]


def test_pbs_refusal(tmp_path):
    plugin = PBSPlugin(workdir=tmp_path, factory="f1", runner=FakeRunner((168, "", recorded("qsub_unknown_queue.err"))))
    with pytest.raises(PluginError, match="qsub exited with 168: qsub: submit error .Unknown queue"):
        plugin.submit(spec())


# ---------------------------------------------------------------- HTCondor


def test_condor_submit_writes_a_description_and_reads_the_cluster(tmp_path):
    runner = FakeRunner((0, recorded("condor_submit.out"), ""), (0, recorded("condor_q.out"), ""))
    plugin = CondorPlugin(workdir=tmp_path, factory="f1", runner=runner, walltime_minutes=60,
                          extra=['requirements = (OpSys == "LINUX")'])  # fmt: skip
    assert plugin.submit(spec()) == "9876.0"
    argv, env = runner.calls[0]
    description = tmp_path / "submit" / "BNL" / f"pilot-{PILOT_ID}.sub"
    assert argv == ["condor_submit", str(description)]
    text = description.read_text()
    assert f"executable = {tmp_path}/submit/BNL/pilot-{PILOT_ID}.sh" in text
    assert '+PandaFactory = "f1"' in text and f'+PandaPilotID = "{PILOT_ID}"' in text
    assert "getenv = PANDA_PILOT_TOKEN" in text and "s3cret-token" not in text and env["PANDA_PILOT_TOKEN"]
    assert "+MaxRuntime = 3600" in text and 'requirements = (OpSys == "LINUX")' in text and text.endswith("queue 1\n")
    states = plugin.status({"9876.0": "a", "9878.0": "b", "9800.0": "c"})
    assert runner.calls[1][0] == ["condor_q", "-constraint", 'PandaFactory == "f1"', "-af:j", "JobStatus", "ExitCode",
                                  "HoldReason"]  # fmt: skip
    assert {job: state.state for job, state in states.items()} == {"9876.0": QUEUED, "9878.0": HELD}


def test_condor_refusal(tmp_path):
    plugin = CondorPlugin(workdir=tmp_path, factory="f1", runner=FakeRunner((1, "Submitting job(s)\n",
                                                                            recorded("condor_submit_error.err"))))  # fmt: skip
    with pytest.raises(PluginError, match="condor_submit exited with 1: ERROR: Executable file"):
        plugin.submit(spec())


def test_a_missing_batch_command_is_a_plugin_error():
    with pytest.raises(PluginError, match="sbatch-that-is-not-installed: command not found"):
        run_command(["sbatch-that-is-not-installed", "--version"])

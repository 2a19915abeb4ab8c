"""Batch-system plugins: Slurm (sbatch/squeue), PBS/Torque (qsub/qstat), HTCondor (condor_submit/condor_q).

Each submits the pilot wrapper (sites/factory/wrapper.py) as a batch job and reads the
queue's state from the tool's plain-text output. The parsers are module functions tested
against recorded outputs (tests/sites/batch_outputs/). The pilot credential reaches the job
through the submitting command's environment (Slurm exports it by default, qsub -v, HTCondor
getenv): it is never written into a script or submit file.
"""

import os
import re
from pathlib import Path

from .plugins import ENDED, HELD, QUEUED, RUNNING, BatchState, PluginError, command_failed, run_command
from .wrapper import batch_script

TOKEN_VARIABLE = "PANDA_PILOT_TOKEN"


class BatchPlugin:
    name = ""

    def __init__(self, *, workdir, factory, runner=run_command, queue="", walltime_minutes=0, extra=()):
        self.workdir = Path(workdir)
        self.factory = factory
        self.runner = runner
        self.queue = queue
        self.walltime_minutes = walltime_minutes
        self.extra = tuple(extra)

    def _paths(self, spec):
        """(script, output log) of one pilot: scripts and logs kept per site under the factory's workdir."""
        submit_dir = self.workdir / "submit" / spec.site
        log_dir = self.workdir / "logs" / spec.site
        submit_dir.mkdir(parents=True, exist_ok=True)
        log_dir.mkdir(parents=True, exist_ok=True)
        return submit_dir / f"pilot-{spec.pilot_id}.sh", log_dir / f"pilot-{spec.pilot_id}.out"

    def _write_script(self, path, spec):
        path.write_text(batch_script(spec))
        path.chmod(0o700)

    def _environment(self, spec):
        env = dict(os.environ)
        env.pop(TOKEN_VARIABLE, None)
        if spec.token:
            env[TOKEN_VARIABLE] = spec.token
        return env

    def _run(self, argv, *, env=None):
        completed = self.runner(argv, env=env)
        if completed.returncode != 0:
            raise command_failed(argv, completed)
        return completed.stdout


def _walltime(minutes):
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00"


# ---------------------------------------------------------------- Slurm


class SlurmPlugin(BatchPlugin):
    name = "slurm"

    @property
    def job_name(self):
        return f"panda-pilot-{self.factory}"

    def submit_command(self, script, output):
        argv = ["sbatch", "--parsable", f"--job-name={self.job_name}", f"--output={output}", "--export=ALL"]
        argv += [f"--partition={self.queue}"] if self.queue else []
        argv += [f"--time={self.walltime_minutes}"] if self.walltime_minutes else []
        return [*argv, *self.extra, str(script)]

    def submit(self, spec):
        script, output = self._paths(spec)
        self._write_script(script, spec)
        argv = self.submit_command(script, output)
        return parse_sbatch(self._run(argv, env=self._environment(spec)), argv)

    def status_command(self):
        # By job name, not by id: squeue fails outright when one of several --jobs ids has left the queue.
        # --states=all keeps ended jobs listed for MinJobAge (300 s by default): their end state is the reason.
        return ["squeue", "--noheader", "--states=all", f"--name={self.job_name}", "--format=%i|%T|%r"]

    def status(self, jobs):
        states = parse_squeue(self._run(self.status_command()))
        return {batch_id: state for batch_id, state in states.items() if batch_id in jobs}

    def cancel(self, batch_id, pilot_id):
        self._run(["scancel", batch_id])


SLURM_QUEUED = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "RESIZING"}
SLURM_HELD = {"REQUEUE_HOLD", "RESV_DEL_HOLD", "SPECIAL_EXIT"}
SLURM_RUNNING = {"RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT"}
SLURM_HOLD_REASONS = {"JobHeldUser", "JobHeldAdmin"}


def parse_sbatch(stdout, argv=("sbatch",)):
    """The job id from `sbatch --parsable` ("12345" or "12345;cluster") or plain sbatch ("Submitted batch job 12345")."""
    text = stdout.strip()
    match = re.fullmatch(r"(\d+)(?:;\S+)?", text.splitlines()[-1].strip() if text else "")
    match = match or re.search(r"Submitted batch job (\d+)", text)
    if not match:
        raise PluginError(f"{argv[0]}: no job id in its output: {text[:200]!r}")
    return match.group(1)


def parse_squeue(stdout):
    """{job id: BatchState} from `squeue --noheader --format=%i|%T|%r`."""
    states = {}
    for line in stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 2 or not parts[0]:
            continue
        job_id, state, reason = parts[0].strip(), parts[1].strip().upper(), (parts[2].strip() if len(parts) > 2 else "")
        if state in SLURM_HELD or (state == "PENDING" and reason in SLURM_HOLD_REASONS):
            states[job_id] = BatchState(HELD, detail=f"{state} ({reason})" if reason else state)
        elif state in SLURM_QUEUED:
            states[job_id] = BatchState(QUEUED, detail=reason if reason not in ("", "None") else "")
        elif state in SLURM_RUNNING:
            states[job_id] = BatchState(RUNNING)
        else:  # COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL, OUT_OF_MEMORY, PREEMPTED, BOOT_FAIL, DEADLINE...
            states[job_id] = BatchState(ENDED, exit_code=0 if state == "COMPLETED" else None, detail=state)
    return states


# ---------------------------------------------------------------- PBS / Torque


class PBSPlugin(BatchPlugin):
    name = "pbs"

    @property
    def job_name(self):
        return f"pilot-{self.factory}"[:15]  # Torque allows 15 characters

    def submit_command(self, script, output, with_token):
        argv = ["qsub", "-N", self.job_name, "-j", "oe", "-o", str(output)]
        argv += ["-q", self.queue] if self.queue else []
        argv += ["-l", f"walltime={_walltime(self.walltime_minutes)}"] if self.walltime_minutes else []
        argv += ["-v", TOKEN_VARIABLE] if with_token else []
        return [*argv, *self.extra, str(script)]

    def submit(self, spec):
        script, output = self._paths(spec)
        self._write_script(script, spec)
        argv = self.submit_command(script, output, bool(spec.token))
        return parse_qsub(self._run(argv, env=self._environment(spec)), argv)

    def status_command(self):
        return ["qstat"]

    def status(self, jobs):
        states = parse_qstat(self._run(self.status_command()))
        # The default listing may shorten the server part of an id: match on the sequence number.
        ours = {_pbs_number(batch_id): batch_id for batch_id in jobs}
        return {ours[_pbs_number(job_id)]: state for job_id, state in states.items() if _pbs_number(job_id) in ours}

    def cancel(self, batch_id, pilot_id):
        self._run(["qdel", batch_id])


PBS_STATES = {"Q": QUEUED, "W": QUEUED, "T": QUEUED, "H": HELD, "S": HELD, "U": HELD,
              "R": RUNNING, "E": RUNNING, "B": RUNNING, "C": ENDED, "F": ENDED, "X": ENDED}  # fmt: skip


def _pbs_number(job_id):
    return job_id.split(".", 1)[0]


def parse_qsub(stdout, argv=("qsub",)):
    """The job id qsub prints ("4807.pbs01.example.org")."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if not lines or not re.fullmatch(r"\d+(\[\d*\])?(\.[\w.-]+)?", lines[-1]):
        raise PluginError(f"{argv[0]}: no job id in its output: {stdout.strip()[:200]!r}")
    return lines[-1]


def parse_qstat(stdout):
    """{job id: BatchState} from plain `qstat` (the table after the dashed line; S is the second-last column)."""
    states, in_table = {}, False
    for line in stdout.splitlines():
        if line.startswith("---"):
            in_table = True
            continue
        parts = line.split()
        if not in_table or len(parts) < 3:
            continue
        code = parts[-2]
        state = PBS_STATES.get(code)
        if state is not None:
            states[parts[0].rstrip("*")] = BatchState(state, detail=f"qstat state {code}")
    return states


# ---------------------------------------------------------------- HTCondor


class CondorPlugin(BatchPlugin):
    name = "condor"

    def submit_description(self, script, output, with_token, spec):
        lines = ["universe = vanilla", f"executable = {script}", f"output = {output}", f"error = {output}.err",
                 f"log = {output.with_suffix('.condor.log')}", f'+PandaFactory = "{self.factory}"',
                 f'+PandaPilotID = "{spec.pilot_id}"']  # fmt: skip
        lines += [f"getenv = {TOKEN_VARIABLE}"] if with_token else []
        lines += [f"+MaxRuntime = {self.walltime_minutes * 60}"] if self.walltime_minutes else []
        return "\n".join([*lines, *self.extra, "queue 1"]) + "\n"

    def submit(self, spec):
        script, output = self._paths(spec)
        self._write_script(script, spec)
        description = script.with_suffix(".sub")
        description.write_text(self.submit_description(script, output, bool(spec.token), spec))
        argv = ["condor_submit", str(description)]
        return parse_condor_submit(self._run(argv, env=self._environment(spec)), argv)

    def status_command(self):
        return ["condor_q", "-constraint", f'PandaFactory == "{self.factory}"', "-af:j", "JobStatus", "ExitCode",
                "HoldReason"]  # fmt: skip

    def status(self, jobs):
        states = parse_condor_q(self._run(self.status_command()))
        return {batch_id: state for batch_id, state in states.items() if batch_id in jobs}

    def cancel(self, batch_id, pilot_id):
        self._run(["condor_rm", batch_id])


CONDOR_STATES = {"1": QUEUED, "2": RUNNING, "3": ENDED, "4": ENDED, "5": HELD, "6": RUNNING, "7": HELD}
CONDOR_NAMES = {"1": "idle", "2": "running", "3": "removed", "4": "completed", "5": "held", "6": "transferring output",
                "7": "suspended"}  # fmt: skip


def parse_condor_submit(stdout, argv=("condor_submit",)):
    """ "1 job(s) submitted to cluster 4321." -> "4321.0" (one job per submission)."""
    match = re.search(r"(\d+) job\(s\) submitted to cluster (\d+)", stdout)
    if not match or match.group(1) != "1":
        raise PluginError(f"{argv[0]}: expected one job submitted, got: {stdout.strip()[:200]!r}")
    return f"{match.group(2)}.0"


def parse_condor_q(stdout):
    """{job id: BatchState} from `condor_q -af:j JobStatus ExitCode HoldReason` ("4321.0 5 undefined reason...")."""
    states = {}
    for line in stdout.splitlines():
        parts = line.split(None, 3)
        if len(parts) < 2 or not re.fullmatch(r"\d+\.\d+", parts[0]) or parts[1] not in CONDOR_STATES:
            continue
        exit_code = int(parts[2]) if len(parts) > 2 and parts[2].lstrip("-").isdigit() else None
        hold_reason = parts[3].strip() if len(parts) > 3 and parts[3].strip() != "undefined" else ""
        detail = CONDOR_NAMES[parts[1]] + (f": {hold_reason}" if hold_reason else "")
        states[parts[0]] = BatchState(CONDOR_STATES[parts[1]], exit_code=exit_code, detail=detail)
    return states

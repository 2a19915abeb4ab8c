"""An analysis task end to end: a 20-file dataset at one site, 2 files per job, real pilots.

A third of the payloads fail once with a retryable error (exit 75, EX_TEMPFAIL, which the
seeded retry rules retry); the task must end done with every file processed exactly once
and its output container holding every output.
"""

import subprocess
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

import pytest

from datasets.models import ContainerMember, Dataset, DatasetFile
from datasets.services import catalog, replicas
from datasets.services.replicas import deterministic_pfn
from jobs.choices import FileType, JobStatus
from jobs.models import Job, JobFile, RetryRule
from pandamon import roles
from sites.services import create_pilot_credential
from tasks.choices import InputStatus, TaskStatus, TaskType
from tasks.models import Task, TaskInput
from tasks.services import rollup
from tasks.services.creation import submit_task

from ..factories import CloudFactory, SiteFactory, UserFactory, grant_role
from .conftest import ROOT

pytestmark = pytest.mark.live
INPUT = "mc11.007216.singlepart_mu18.digit.v11000302"
N_FILES = 20

# $1: the inputs (comma list, staged into the work directory), $2: the output, $3: the serial number.
PAYLOAD = """#!/bin/sh
set -e
for f in $(echo "$1" | tr ',' ' '); do test -s "$f" || { echo "input $f missing" >&2; exit 2; }; done
marker="MARKERS/$3"
serial=$(echo "$3" | sed 's/^0*//')
if [ $(( serial % 3 )) -eq 0 ] && [ ! -e "$marker" ]; then
    touch "$marker"; echo "transient failure of job $3: try again" >&2; exit 75
fi
echo "$1" > "$2"
"""


def make_input(site, storage, operator):
    files = {f"{INPUT}._{i:05d}.pool.root": f"events of file {i}\n".encode() * 50 for i in range(1, N_FILES + 1)}
    for lfn, data in files.items():
        path = Path(deterministic_pfn(site, lfn))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    specs = [{"lfn": lfn, "fsize": len(d), "adler32": f"{zlib.adler32(d):08x}"} for lfn, d in files.items()]
    catalog.register_new_dataset(user=operator, name=INPUT, files=specs)
    replicas.register_dataset_location(user=operator, name=INPUT, site_name=site.name, complete=True)
    return set(files)


def start_pilot(url, token_file, tmp_path, storage, n):
    argv = [sys.executable, "-m", "pilot", "--server", url, "--site", "TASKSITE", "--credential-file",
            str(token_file), "--heartbeat", "2", "--idle-sleep", "1", "--storage-dir", str(storage),
            "--workdir", str(tmp_path / f"wd{n}"), "--node", f"wn{n}"]  # fmt: skip
    log = open(tmp_path / f"pilot{n}.log", "wb")  # noqa: SIM115 - closed by the test
    return subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), log


def wait_for_task(task, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rollup.roll_up(lag_seconds=0)
        task.refresh_from_db()
        if task.status in (TaskStatus.DONE, TaskStatus.FINISHED, TaskStatus.FAILED):
            return task
        time.sleep(1)
    pytest.fail(f"task still {task.status} after {timeout} s: jobs {task.jobs_by_state}")


def test_an_analysis_task_runs_to_done_through_retries(live_server_url, celery_worker, tmp_path):
    storage, markers = tmp_path / "se", tmp_path / "markers"
    storage.mkdir()
    markers.mkdir()
    site = SiteFactory(name="TASKSITE", cloud=CloudFactory(name="E2ECLOUD"), storage_endpoint=str(storage))
    operator = UserFactory(username="ddmops")
    grant_role(operator, roles.DATA_OPERATOR)
    lfns = make_input(site, storage, operator)
    alice = UserFactory(username="alice")
    spec = {"input_dataset": INPUT, "output_dataset": "user.alice.e2e.reco", "n_files_per_job": 2,
            "transformation": PAYLOAD.replace("MARKERS", str(markers)), "job_parameters": "${IN} ${OUT} ${SN}",
            "site": "TASKSITE", "max_attempts": 3}  # fmt: skip
    # The seeded rule that retries exit 75 (jobs migration 0006); live tests empty every table after each
    # test, migration data included, so it is put back here when an earlier test removed it.
    RetryRule.objects.get_or_create(error_source="exe", error_code=75, action="limit_retry",
                                    defaults={"position": 40, "comment": "EX_TEMPFAIL: a temporary failure"})  # fmt: skip
    task, pandaids = submit_task(user=alice, spec=spec, task_type=TaskType.ANALYSIS)
    assert len(pandaids) == N_FILES // 2
    _, pilot_token = create_pilot_credential(name="task-e2e", sites=[site])
    token_file = tmp_path / "pilot.token"
    token_file.write_text(pilot_token)
    pilots = [start_pilot(live_server_url, token_file, tmp_path, storage, n) for n in (1, 2)]
    try:
        task = wait_for_task(task)
    finally:
        for process, log in pilots:
            process.terminate()
            process.wait(timeout=30)
            log.close()
    logs = "\n".join((tmp_path / f"pilot{n}.log").read_text()[-2000:] for n in (1, 2))
    left = list(
        Job.objects.filter(task_id=task.task_id, status="failed").values_list(
            "job_name", "trans_exit_code", "pilot_error_code", "pilot_error_diag", "exe_error_diag", "attempt_nr"
        )
    )
    assert task.status == TaskStatus.DONE, f"{task.status} {task.jobs_by_state} {task.files_failed} {left}\n{logs}"

    jobs = Job.objects.filter(task_id=task.task_id)
    failed = jobs.filter(status=JobStatus.FAILED)
    assert failed.count() == 3 and set(failed.values_list("trans_exit_code", flat=True)) == {75}
    assert jobs.filter(status=JobStatus.FINISHED, attempt_nr=2, parent_id__in=failed.values("pandaid")).count() == 3
    processed = Counter(
        JobFile.objects.filter(job__in=jobs.filter(status=JobStatus.FINISHED), type=FileType.INPUT)
        .values_list("lfn", flat=True)
    )  # fmt: skip
    assert set(processed) == lfns and set(processed.values()) == {1}  # every file exactly once
    assert TaskInput.objects.filter(task=task, status=InputStatus.DONE).count() == N_FILES
    assert (task.files_done, task.files_failed, task.files_total) == (N_FILES, 0, N_FILES)

    container = Dataset.objects.get(name="user.alice.e2e.reco")
    members = ContainerMember.objects.filter(container=container).values("member_id")
    held = set(DatasetFile.objects.filter(dataset_id__in=members).values_list("file__lfn", flat=True))
    outputs = set(JobFile.objects.filter(job__in=jobs.filter(status=JobStatus.FINISHED), type=FileType.OUTPUT)
                  .values_list("lfn", flat=True))  # fmt: skip
    assert len(outputs) == N_FILES // 2 and outputs <= held
    assert container.state == "closed"  # the task ended: its outputs are closed
    assert Task.objects.get(pk=task.pk).ended_at is not None

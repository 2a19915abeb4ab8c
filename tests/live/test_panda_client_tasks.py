"""The unchanged panda-client 2.2.0 (from PyPI) against the live server: its task functions.

insertTaskParams -> getTaskStatus -> getPandaIDsWithTaskID -> getTaskParamsMap -> pauseTask ->
resumeTask -> killTask -> getTaskStatus -> retryTask -> finishTask, plus a refused submission,
run by a script in the client's own virtualenv with the API token of a test user (PANDA_AUTH=oidc).
"""

import json
import os
import subprocess

import pytest
from rest_framework.authtoken.models import Token

from datasets.services import catalog
from jobs.models import Job
from pandamon import roles
from tasks.choices import TaskStatus, TaskType
from tasks.models import Task

from ..factories import SiteFactory, UserFactory, grant_role
from .panda_packages import panda_client_python

pytestmark = [pytest.mark.live, pytest.mark.panda_compat, pytest.mark.django_db(transaction=True)]
INPUT = "mc11.007216.singlepart_mu18.evgen.v1"
OUTPUT = "user.alice.clienttask.v1"

SCRIPT = r"""
import json, re, sys
from pandaclient import Client

params = json.loads(sys.argv[1])
out = {"submit": Client.insertTaskParams(params)}
task_id = int(re.search(r"jediTaskID=(\d+)", out["submit"][1][1]).group(1))
out["task_id"] = task_id
out["status"] = Client.getTaskStatus(task_id)
out["ids"] = Client.getPandaIDsWithTaskID(task_id)
out["params"] = Client.getTaskParamsMap(task_id)
out["pause"] = Client.pauseTask(task_id, verbose=False)
out["paused"] = Client.getTaskStatus(task_id)
out["resume"] = Client.resumeTask(task_id, verbose=False)
out["kill"] = Client.killTask(task_id)
out["killed"] = Client.getTaskStatus(task_id)
out["kill_again"] = Client.killTask(task_id)
out["retry"] = Client.retryTask(task_id)
out["finish"] = Client.finishTask(task_id)
out["refused"] = Client.insertTaskParams(dict(params, mergeOutput=True, taskName="user.alice.other"))
print("RESULT " + json.dumps(out))
"""


def jedi_map():
    return {
        "taskName": OUTPUT, "userName": "alice", "vo": "atlas", "prodSourceLabel": "user", "taskType": "anal",
        "taskPriority": 1000, "architecture": "", "transUses": "", "transHome": None, "transPath": "executable",
        "processingType": "panda-client-test", "site": "CLIENT_PQ", "nFilesPerJob": 2, "uniqueTaskName": True,
        "log": {"dataset": f"{OUTPUT}.log/", "container": f"{OUTPUT}.log/", "type": "template", "param_type": "log",
                "value": f"{OUTPUT}.log.$JEDITASKID.${{SN}}.log.tgz"},
        "jobParameters": [
            {"type": "template", "param_type": "input", "value": "-i ${IN/L}", "dataset": INPUT},
            {"type": "template", "param_type": "output", "value": f"--out={OUTPUT}.${{SN/P}}.root",
             "dataset": f"{OUTPUT}/", "container": f"{OUTPUT}/"},
            {"type": "constant", "value": "--events=${MAXEVENTS}"},
        ],
    }  # fmt: skip


def run_client(url, token, home, params):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PANDA", "X509", "OIDC"))}
    env.update(PANDA_URL=f"{url}/server/panda", PANDA_URL_SSL=f"{url}/server/panda",
               PANDACACHE_URL=f"{url}/server/panda", PANDA_BEHIND_REAL_LB="1", PANDA_AUTH="oidc",
               PANDA_AUTH_VO="test", PANDA_AUTH_ID_TOKEN=token, HOME=str(home))  # fmt: skip
    done = subprocess.run([str(panda_client_python()), "-c", SCRIPT, json.dumps(params)], env=env, cwd=home,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, f"client failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT ") :]), done.stdout


def test_the_real_client_submits_reads_and_kills_a_task(live_server_url, tmp_path):
    python = panda_client_python()  # skips when the client cannot be installed
    assert python.exists()
    operator = grant_role(UserFactory(username="ddmops"), roles.DATA_OPERATOR)
    files = [{"lfn": f"{INPUT}._{i:05d}.pool.root", "fsize": 1000 + i, "adler32": "0000abcd"} for i in range(1, 6)]
    catalog.register_new_dataset(user=operator, name=INPUT, files=files)
    SiteFactory(name="CLIENT_PQ")
    alice = UserFactory(username="alice")
    token = Token.objects.create(user=alice).key

    out, stdout = run_client(live_server_url, token, tmp_path, jedi_map())

    task = Task.objects.get(name=OUTPUT)
    assert (task.type, task.owner_name, task.input_dataset, task.output_dataset) == (
        TaskType.ANALYSIS, "alice", INPUT, OUTPUT)  # fmt: skip
    assert task.job_parameters == "-i ${IN} --out=${OUT} --events=${MAXEVENTS}"
    status, (code, message) = out["submit"]
    assert (status, code, out["task_id"]) == (0, 0, task.task_id)
    assert message.startswith(f"succeeded. new jediTaskID={task.task_id} (3 job(s) for 5 input file(s))")
    assert out["status"] == [0, "ready"]
    pandaids = sorted(Job.objects.filter(task_id=task.task_id).values_list("pandaid", flat=True))
    assert out["ids"] == [0, pandaids] and len(pandaids) == 3
    status, params = out["params"]
    assert status == 0 and params["taskName"] == OUTPUT and params["nFilesPerJob"] == 2
    assert out["pause"] == [0, [True, 0]] and out["paused"] == [0, "paused"]
    assert out["resume"] == [0, [True, 0]]
    assert out["kill"] == [0, [True, 0]] and out["killed"] == [0, "aborted"]
    # Nothing failed (the jobs were cancelled), so the retry does nothing and says so.
    assert out["retry"] == [0, [0, f"task {task.task_id} has no failed job without a new attempt; nothing to retry"]]
    # Refusals keep our 4xx status, so the client answers (255, None) and prints the server's answer.
    assert out["kill_again"] == [255, None]
    assert f"task {task.task_id} is already aborted; there is nothing to kill" in stdout
    assert out["finish"] == [255, None] and "task/finish is not supported here" in stdout
    assert out["refused"] == [255, None] and "task parameter mergeOutput is not supported here" in stdout
    assert not Task.objects.filter(name="user.alice.other").exists()
    task.refresh_from_db()
    assert task.status == TaskStatus.ABORTED
    assert set(Job.objects.filter(task_id=task.task_id).values_list("status", flat=True)) == {"cancelled"}

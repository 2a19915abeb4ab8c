"""panda submit / tasks / task against the real server (gunicorn), and a real pilot running a cached tarball.

The command runs as a subprocess, as users run it; the server is the project under gunicorn
on the test database (tests/live/conftest.py).
"""

import hashlib
import os
import subprocess
import sys
import time
import zlib

import pytest
import requests
from rest_framework.authtoken.models import Token

from client.storage import deterministic_pfn
from datasets.services import catalog, replicas
from jobs.choices import FileType, JobStatus
from jobs.models import Job, JobFile
from pandamon import roles
from sites.services import create_pilot_credential
from tasks.models import Task, TaskInput
from tests.factories import SiteFactory, UserFactory, grant_role
from tests.live import conftest as live

# The live fixtures (gunicorn and a Celery worker on the test database), shared with tests/live.
ROOT, server_env, live_server_url, celery_worker = live.ROOT, live.server_env, live.live_server_url, live.celery_worker

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]
INPUT = "data11.00180164.physics_Muons.AOD"
SCRIPT = '#!/bin/sh\necho "inputs $1"\necho done > "$2"\n'


@pytest.fixture(autouse=True)
def _small_cache(monkeypatch):
    """The server's cache limit is 64 KB (read by server_env from this environment)."""
    monkeypatch.setenv("PANDA_CACHE_MAX_MB", str(64 / 1024))


def panda(url, home, *argv, token=None, cwd=None):
    env = {**os.environ, "PANDA_URL": url, "HOME": str(home), "PYTHONPATH": str(ROOT)}
    for name in ("PANDA_TOKEN", "PANDA_TOKEN_FILE"):
        env.pop(name, None)
    if token:
        env["PANDA_TOKEN"] = token
    result = subprocess.run([sys.executable, "-m", "client.panda", *argv], cwd=cwd or ROOT, env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    return result.returncode, result.stdout, result.stderr


def register_input(operator, n, start=1, site=None, content=None):
    """n files of INPUT (new or added); with a site, their bytes are put on its storage and registered there."""
    files = []
    for i in range(start, start + n):
        data = (content or f"event data {i}\n").encode() * (i + 1)
        files.append({"lfn": f"{INPUT}._{i:05d}.pool.root", "fsize": len(data),
                      "adler32": f"{zlib.adler32(data):08x}", "data": data})  # fmt: skip
    specs = [{key: value for key, value in f.items() if key != "data"} for f in files]
    if start == 1:
        catalog.register_new_dataset(user=operator, name=INPUT, files=specs)
    else:
        catalog.add_files_to_dataset(user=operator, name=INPUT, files=specs)
    if site is not None:
        for f in files:
            path = deterministic_pfn(site.storage_endpoint, f["lfn"])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as target:
                target.write(f["data"])
        replicas.register_file_replicas(user=operator, site_name=site.name, replicas=[{"lfn": f["lfn"]} for f in files])
    return [f["lfn"] for f in files]


@pytest.fixture
def operator(transactional_db):
    return grant_role(UserFactory(username="ddmops"), roles.DATA_OPERATOR)


@pytest.fixture
def alice_token(transactional_db):
    return Token.objects.create(user=UserFactory(username="alice")).key


def test_submit_resubmit_and_follow_a_task(live_server_url, tmp_path, operator, alice_token):
    lfns = register_input(operator, 3)
    script = tmp_path / "analyse.sh"
    script.write_text(SCRIPT)
    submit = ["submit", "--inDS", INPUT, "--outDS", "user.alice.cli.v1", "--nFilesPerJob", "2", "--maxAttempt", "2",
              "--", str(script), "${IN}", "${OUT}"]  # fmt: skip

    code, out, err = panda(live_server_url, tmp_path, *submit, token=alice_token)
    assert code == 0, err
    task = Task.objects.get()
    lines = out.splitlines()
    assert lines[0].startswith(f"uploaded {script} ({len(SCRIPT)} bytes) {live_server_url}/cache/")
    assert lines[1] == f"task {task.pk} defined: 2 job(s) for 3 input file(s)"
    pandaids = sorted(Job.objects.filter(task_id=task.pk).values_list("pandaid", flat=True))
    assert lines[2] == f"PandaIDs: {pandaids[0]} {pandaids[1]}"
    assert lines[3] == f"task {task.pk} user.alice.cli.v1: ready  {live_server_url}/tasks/{task.pk}/"
    assert task.transformation == lines[0].split()[-1] and task.max_attempts == 2
    first = Job.objects.get(pk=pandaids[0])
    assert first.job_parameters == f"{lfns[0]},{lfns[1]} user.alice.cli.v1.root._000001.root"
    assert first.transformation == task.transformation
    # The cached script is what the pilot will fetch: with a pilot credential, not without one.
    site = SiteFactory(name="ANALY_TEST")
    _, pilot_token = create_pilot_credential(name="test-pilot", sites=[site])
    fetched = requests.get(task.transformation, headers={"Authorization": f"Bearer {pilot_token}"}, timeout=10)
    assert fetched.status_code == 200 and fetched.text == SCRIPT
    assert requests.get(task.transformation, timeout=10).status_code == 401

    code, out, err = panda(live_server_url, tmp_path, *submit, token=alice_token)
    assert code == 0, err
    assert out.splitlines()[0].startswith(f"already in the cache: {script}")
    assert f"task {task.pk} (user.alice.cli.v1) has no new input files: nothing to do" in out

    new = register_input(operator, 1, start=4)
    code, out, err = panda(live_server_url, tmp_path, *submit, token=alice_token)
    assert code == 0, err
    assert "1 new input file(s) in 1 new job(s); files it had before are not processed again" in out
    newest = Job.objects.filter(task_id=task.pk).order_by("-pandaid").first()
    assert list(TaskInput.objects.filter(job_id=newest.pk).values_list("lfn", flat=True)) == new

    code, out, err = panda(live_server_url, tmp_path, "tasks", token=alice_token)
    assert code == 0, err
    assert out.split()[:5] == [str(task.pk), "ready", "analysis", "alice", "0/4"]
    code, out, err = panda(live_server_url, tmp_path, "tasks", "--status", "done", token=alice_token)
    assert code == 0 and out == ""
    code, out, err = panda(live_server_url, tmp_path, "task", str(task.pk))
    assert code == 0, err
    assert f"task            {task.pk}  user.alice.cli.v1" in out
    assert "files           4 total: 0 done, 0 failed, 4 to go" in out
    assert "splitting       2 file(s) per job" in out
    assert f"page            {live_server_url}/tasks/{task.pk}/" in out


def test_refusals_are_one_line_with_the_right_exit_code(live_server_url, tmp_path, operator, alice_token):
    register_input(operator, 1)
    script = tmp_path / "analyse.sh"
    script.write_text(SCRIPT)
    base = ["submit", "--inDS", INPUT, "--nFilesPerJob", "1"]

    def refused(*argv, token=alice_token, expect=1):
        code, out, err = panda(live_server_url, tmp_path, *argv, token=token)
        assert code == expect, (out, err)
        assert len(err.splitlines()) == 1 and err.startswith("panda: error: "), err
        return err

    assert "user.alice.*" in refused(*base, "--outDS", "user.bob.x", "--", str(script))
    assert "unknown placeholder ${HOME}" in refused(*base, "--outDS", "user.alice.x", "--", str(script), "${HOME}")
    assert "no dataset named nothing.here" in refused("submit", "--inDS", "nothing.here", "--outDS", "user.alice.y",
                                                      "--", str(script))  # fmt: skip
    assert "not logged in" in refused(*base, "--outDS", "user.alice.x", "--", str(script), token="", expect=2)
    assert "no such file" in refused(*base, "--outDS", "user.alice.x", "--", "nope.sh", expect=2)
    assert "give what each job runs" in refused(*base, "--outDS", "user.alice.x", expect=2)
    plain = tmp_path / "plain.txt"
    plain.write_text("echo hi\n")
    assert "does not start with #!" in refused(*base, "--outDS", "user.alice.x", "--", str(plain), expect=2)
    big = tmp_path / "big"
    big.mkdir()
    (big / "run.sh").write_text(SCRIPT)
    (big / "data.bin").write_bytes(os.urandom(100 * 1024))
    err = refused(*base, "--outDS", "user.alice.x", "--workDir", str(big), "--", "run.sh", expect=2)
    assert "the server's cache takes at most 0.0625 MB: leave big files out of --workDir" in err
    assert "no task 999999" in refused("task", "999999")
    assert not Task.objects.exists()
    # The script was uploaded before the server refused the tasks (kept, content-addressed); the big one never was.
    stored = [path.name for path in (tmp_path / "var" / "cache").glob("*") if path.is_file()]
    assert stored == [hashlib.sha256(SCRIPT.encode()).hexdigest()]


def test_a_real_pilot_runs_a_cached_tarball(live_server_url, celery_worker, tmp_path, operator, alice_token):
    storage = tmp_path / "se"
    site = SiteFactory(name="E2E", storage_endpoint=str(storage))
    lfns = register_input(operator, 2, site=site)
    _, pilot_token = create_pilot_credential(name="e2e", sites=[site])
    work = tmp_path / "mywork"
    (work / "lib").mkdir(parents=True)
    (work / "lib" / "banner.txt").write_text("made by the cached tarball\n")
    (work / "ana.sh").write_text(
        "#!/bin/sh\nset -e\n"
        '{ cat lib/banner.txt; for f in $(echo "$1" | tr , " "); do echo "$f $(wc -c < "$f")"; done; } > "$2"\n'
    )
    code, out, err = panda(live_server_url, tmp_path, "submit", "--inDS", INPUT, "--outDS", "user.alice.tgz.v1",
                           "--workDir", str(work), "--", "ana.sh", "${IN}", "${OUT}", token=alice_token)  # fmt: skip
    assert code == 0, err
    assert out.startswith(f"uploaded the tarball of {work} (")
    task = Task.objects.get()
    assert task.transformation.endswith("#ana.sh") and task.job_parameters == "${IN} ${OUT}"
    pandaids = sorted(Job.objects.filter(task_id=task.pk).values_list("pandaid", flat=True))
    assert len(pandaids) == 2
    wait_for(lambda: Job.objects.filter(pk__in=pandaids, status=JobStatus.ACTIVATED).count() == 2,
             what="brokerage to activate the jobs at E2E")  # fmt: skip

    token_file = tmp_path / "pilot.token"
    token_file.write_text(pilot_token)
    argv = [sys.executable, "-m", "pilot", "--server", live_server_url, "--site", "E2E", "--credential-file",
            str(token_file), "--max-jobs", "2", "--heartbeat", "1", "--idle-sleep", "1", "--storage-dir",
            str(storage), "--workdir", str(tmp_path / "wd"), "--kill-grace", "2"]  # fmt: skip
    with open(tmp_path / "pilot.log", "wb") as log:
        pilot = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            assert pilot.wait(timeout=120) == 0
        finally:
            if pilot.poll() is None:
                pilot.kill()
                pilot.wait()
    pilot_log = (tmp_path / "pilot.log").read_text()
    assert "(with the pilot credential)" in pilot_log and "unpacked the transformation archive" in pilot_log
    wait_for(lambda: set(Job.objects.filter(pk__in=pandaids).values_list("status", flat=True)) == {"finished"},
             what="both jobs to finish", diagnostics=lambda: pilot_log[-3000:])  # fmt: skip
    for pandaid, lfn in zip(pandaids, lfns, strict=True):
        output = JobFile.objects.get(job_id=pandaid, type=FileType.OUTPUT)
        stored = open(output.surl.removeprefix("file://")).read()
        size = os.path.getsize(deterministic_pfn(str(storage), lfn))
        assert stored == f"made by the cached tarball\n{lfn} {size}\n"


def wait_for(predicate, timeout=90, what="condition", diagnostics=lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}\n{diagnostics()}")

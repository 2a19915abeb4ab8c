"""The real dq2 command against the real server (gunicorn on the test database) and directory storage."""

import os
import subprocess
import sys
import zlib

import pytest
from rest_framework.authtoken.models import Token

from client.storage import deterministic_pfn
from datasets.services.subscriptions import evaluate_subscriptions

from ..factories import SiteFactory, UserFactory
from .conftest import ROOT

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

DS = "user.alice.test1"


def dq2(url, token, *argv, home):
    env = {**os.environ, "PANDA_URL": url, "PANDA_TOKEN": token, "HOME": str(home)}
    env.pop("PANDA_TOKEN_FILE", None)
    result = subprocess.run(
        [sys.executable, "-m", "client.dq2", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    return result.returncode, result.stdout, result.stderr


@pytest.fixture
def world(live_server_url, tmp_path):
    """A site whose storage is a directory, and two users with API tokens."""
    storage = tmp_path / "se"
    storage.mkdir()
    SiteFactory(name="DQ2TEST", storage_endpoint=str(storage))
    tokens = {name: Token.objects.create(user=UserFactory(username=name)).key for name in ("alice", "bob")}
    local = tmp_path / "local"
    local.mkdir()
    files = {f"user.alice.test1.{n}.{os.urandom(4).hex()}.root": os.urandom(10_000 * (n + 1)) for n in range(3)}
    for name, data in files.items():
        (local / name).write_bytes(data)

    def run(user, *argv):
        return dq2(live_server_url, tokens[user], *argv, home=tmp_path)

    return run, storage, local, files


def test_put_ls_get_round_trip(world, tmp_path):
    run, storage, local, files = world
    code, out, err = run("alice", "put", "-L", str(local), DS, "-s", "DQ2TEST")
    assert code == 0, err
    assert out.strip() == f"registered {DS} with 3 files; 3 copied to DQ2TEST"
    for lfn, data in files.items():
        assert open(deterministic_pfn(str(storage), lfn), "rb").read() == data

    code, out, err = run("alice", "ls", "user.alice.*")
    assert (code, out) == (0, f"{DS}\n"), err

    code, out, err = run("alice", "ls", "-f", DS)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[-1] == f"total files: 3, total size: {sum(map(len, files.values()))} bytes (60.0 kB)"
    listed = {line.split("\t")[0]: line.split("\t") for line in lines[:-1]}
    assert sorted(listed) == sorted(files)
    for lfn, (_, guid, size, checksum) in listed.items():
        assert (int(size), checksum) == (len(files[lfn]), f"ad:{zlib.adler32(files[lfn]):08x}") and len(guid) == 36

    code, out, err = run("alice", "ls", "-r", DS)
    assert (code, out) == (0, "DQ2TEST\t3/3\tcomplete\n"), err

    code, out, err = run("alice", "get", DS, "-d", str(tmp_path / "download"))
    assert code == 0, err
    assert out.startswith("3 downloaded, 0 already present, 0 failed")
    for lfn, data in files.items():
        assert (tmp_path / "download" / DS / lfn).read_bytes() == data

    code, out, err = run("alice", "put", "-L", str(local), DS, "-s", "DQ2TEST")  # again: nothing to do
    assert (code, out.strip()) == (0, f"{DS} already holds every file; 0 copied to DQ2TEST, 3 already there"), err


def test_put_into_someone_elses_dataset_is_refused(world, tmp_path):
    run, storage, local, _ = world
    assert run("alice", "put", "-L", str(local), DS, "-s", "DQ2TEST")[0] == 0
    other = tmp_path / "bobs"
    other.mkdir()
    (other / "user.bob.extra.root").write_bytes(b"bob was here")
    code, out, err = run("bob", "put", "-L", str(other), DS, "-s", "DQ2TEST")
    assert code == 1 and out == ""
    [line] = err.splitlines()
    assert line.startswith("dq2: error: ") and "alice" in line, err
    assert not os.path.exists(deterministic_pfn(str(storage), "user.bob.extra.root"))  # refused before copying


def test_get_reports_a_corrupted_replica(world, tmp_path):
    run, storage, local, files = world
    assert run("alice", "put", "-L", str(local), DS, "-s", "DQ2TEST")[0] == 0
    victim = sorted(files)[1]
    with open(deterministic_pfn(str(storage), victim), "r+b") as stored:
        stored.seek(100)
        stored.write(b"\xff\xfe\xfd")
    code, out, err = run("alice", "get", DS, "-d", str(tmp_path / "download"))
    assert code == 1
    assert f"{victim}: FAILED: DQ2TEST: checksum mismatch" in err
    assert err.splitlines()[-1] == f"dq2: error: 1 of 3 files could not be fetched: {victim}"
    assert out.startswith("2 downloaded, 0 already present, 1 failed")
    assert not (tmp_path / "download" / DS / victim).exists()


def test_subscribe_list_suspend_and_unsubscribe(world, tmp_path):
    run, _, local, _ = world
    assert run("alice", "put", "-L", str(local), DS, "-s", "DQ2TEST")[0] == 0
    (tmp_path / "dest").mkdir()
    SiteFactory(name="DQ2DEST", storage_endpoint=str(tmp_path / "dest"))

    code, out, err = run("bob", "subscribe", DS, "DQ2DEST")
    assert code == 1 and "belongs to user 'alice'" in err
    code, out, err = run("alice", "subscribe", DS, "DQ2DEST", "--priority", "4")
    assert code == 0, err
    assert out.endswith(f"DQ2DEST subscribed to {DS} (priority 4, active)\n")
    pk = out.split()[1].rstrip(":")
    evaluate_subscriptions()  # the agent (the live server's Celery queue is not worked here)

    code, out, err = run("alice", "subscriptions", "--site", "DQ2*")
    assert code == 0, err
    assert out.splitlines()[1].split() == [pk, "active", "DQ2DEST", "0/3", "4", "user", "alice", DS]
    code, out, err = run("alice", "transfers", "--destination", "DQ2DEST", "--state", "queued")
    assert code == 0 and len(out.splitlines()) == 1 + 3, err

    code, _, err = run("bob", "suspend-subscription", pk)
    assert code == 1 and "belongs to alice" in err
    assert run("alice", "suspend-subscription", pk, "--reason", "later")[1] == (
        f"subscription {pk} ({DS} at DQ2DEST) is suspended\n"
    )
    assert run("alice", "resume-subscription", pk)[1] == f"subscription {pk} ({DS} at DQ2DEST) is active again\n"
    code, out, err = run("alice", "unsubscribe", pk)
    assert code == 0, err
    assert run("alice", "transfers", "--destination", "DQ2DEST") == (0, "no transfers\n", "")
    code, _, err = run("alice", "unsubscribe", pk)
    assert code == 1 and f"no subscription {pk}" in err

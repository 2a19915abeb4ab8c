"""The real panda command against the real server: log in, read quotas, log out."""

import os
import stat
import subprocess
import sys

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from quotas.choices import Resource, SubjectKind
from quotas.models import QuotaRule

from ..factories import UserFactory
from .conftest import ROOT

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def panda(url, home, *argv, stdin=""):
    env = {**os.environ, "PANDA_URL": url, "HOME": str(home)}
    for name in ("PANDA_TOKEN", "PANDA_TOKEN_FILE"):
        env.pop(name, None)
    result = subprocess.run([sys.executable, "-m", "client.panda", *argv], cwd=ROOT, env=env, input=stdin,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    return result.returncode, result.stdout, result.stderr


def test_login_then_quota_then_logout(live_server_url, tmp_path):
    user = UserFactory(username="alice")
    # Hashed with the server's hasher: the test settings' fast MD5 hasher is unknown to the live server.
    user.password = PBKDF2PasswordHasher().encode("s3cret-pw", "live-test-salt", iterations=1000)
    user.save()
    QuotaRule.objects.create(
        subject_kind=SubjectKind.USER, subject_name="alice", resource=Resource.QUEUED_JOBS, soft_limit=10, hard_limit=20
    )

    code, out, err = panda(live_server_url, tmp_path, "login", "-u", "alice", "--password-stdin", stdin="wrong\n")
    assert code == 1 and "Unable to log in" in err and not (tmp_path / ".panda" / "token").exists()

    code, out, err = panda(live_server_url, tmp_path, "login", "-u", "alice", "--password-stdin", stdin="s3cret-pw\n")
    token_file = tmp_path / ".panda" / "token"
    assert code == 0, err
    assert "logged in as alice" in out
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600

    code, out, err = panda(live_server_url, tmp_path, "quota")
    assert code == 0, err
    assert "user alice" in out
    assert "queued_jobs              0 used  (soft 10, hard 20; from user alice)" in out

    assert panda(live_server_url, tmp_path, "logout")[0] == 0 and not token_file.exists()
    code, out, err = panda(live_server_url, tmp_path, "quota")
    assert code == 2 and "not logged in" in err

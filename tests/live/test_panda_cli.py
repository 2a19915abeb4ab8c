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


def test_jobs_alarms_and_site_print_what_the_pages_show(live_server_url, tmp_path):
    from alarms.services.alarms import Finding, raise_alarm
    from jobs.choices import JobStatus

    from ..factories import JobFactory, SiteFactory

    bnl = SiteFactory(name="BNL")
    failed = JobFactory(computing_site=bnl, status=JobStatus.FAILED, job_name="bad.job")
    JobFactory(computing_site=bnl, status=JobStatus.FINISHED)
    raise_alarm(Finding("site-no-pilots", "critical", "site", "BNL", "no pilots for 2 h"), source="rule:test")

    code, out, err = panda(live_server_url, tmp_path, "jobs", "jobstatus=failed", "computingsite=BN*")
    assert code == 0, err
    assert out.split()[:2] == [str(failed.pk), "failed"] and len(out.splitlines()) == 1
    code, out, err = panda(live_server_url, tmp_path, "jobs", "jobstatus=runing")
    assert code == 1 and "jobstatus" in err
    code, out, err = panda(live_server_url, tmp_path, "alarms")
    assert code == 0 and "critical  open  site-no-pilots  site  BNL" in out
    code, out, err = panda(live_server_url, tmp_path, "site", "BNL")
    assert code == 0 and out.startswith("name                   BNL")
    assert panda(live_server_url, tmp_path, "site", "NOWHERE")[0] == 1
    assert panda(live_server_url, tmp_path, "jobs", "oops")[0] == 2

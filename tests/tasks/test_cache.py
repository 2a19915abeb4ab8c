"""The script cache: upload (raw or multipart), content addressing, the size limit, who may read a file back."""

import hashlib
import io
import os
import tarfile

import pytest
from django.conf import settings
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from datasets.services import catalog
from pandamon import roles
from sites.services import create_pilot_credential
from tasks.models import Task
from tests.factories import SiteFactory, UserFactory, grant_role

pytestmark = pytest.mark.django_db
SCRIPT = b'#!/bin/sh\necho "analysing $1" > "$2"\n'


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setitem(settings.PANDA, "CACHE_DIR", str(path))
    monkeypatch.setitem(settings.PANDA, "CACHE_URL", "")
    return path


@pytest.fixture
def people(db):
    made = {name: UserFactory(username=name) for name in ("alice", "bob")}
    made["root"] = UserFactory(username="root", is_staff=True, is_superuser=True)
    return made


def token_client(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {Token.objects.get_or_create(user=user)[0].key}")
    return client


def upload(client, data=SCRIPT):
    return client.post("/api/v1/cache/", data, content_type="application/octet-stream")


def fetch(sha, token=None, client=None):
    client = client or Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.get(f"/cache/{sha}", **headers)


def content(response):
    return b"".join(response.streaming_content)


def tarball(files):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_an_upload_is_stored_under_its_sha256_once(people, cache_dir):
    alice = token_client(people["alice"])
    sha = hashlib.sha256(SCRIPT).hexdigest()
    first = upload(alice)
    assert first.status_code == 201, first.content
    assert first.json() == {"sha256": sha, "size": len(SCRIPT), "kind": "script", "created": True,
                            "url": f"http://testserver/cache/{sha}"}  # fmt: skip
    assert (cache_dir / sha).read_bytes() == SCRIPT
    again = upload(alice)
    assert again.status_code == 200 and again.json()["created"] is False
    # The same bytes from bob: nothing new is stored, but bob may now read it too.
    from_bob = upload(token_client(people["bob"]))
    assert from_bob.status_code == 201 and from_bob.json()["sha256"] == sha
    assert sorted(p.name for p in cache_dir.iterdir()) == sorted(["incoming", "owners", sha])
    assert list((cache_dir / "incoming").iterdir()) == []


def test_multipart_uploads_and_tarballs(people, cache_dir):
    data = tarball({"run.sh": SCRIPT, "lib/helper.py": b"print('hi')\n"})
    response = token_client(people["alice"]).post("/api/v1/cache/", {"file": io.BytesIO(data)}, format="multipart")
    assert response.status_code == 201, response.content
    assert response.json()["kind"] == "tarball" and response.json()["size"] == len(data)
    assert (cache_dir / response.json()["sha256"]).read_bytes() == data
    missing = token_client(people["alice"]).post("/api/v1/cache/", {"other": io.BytesIO(data)}, format="multipart")
    assert missing.status_code == 400 and "field 'file'" in missing.json()["error"]


def test_too_big_is_413_and_stores_nothing(people, cache_dir, monkeypatch):
    monkeypatch.setitem(settings.PANDA, "CACHE_MAX_BYTES", 1000)
    alice = token_client(people["alice"])
    limits = alice.get("/api/v1/cache/").json()
    assert limits == {"max_bytes": 1000, "url": "http://testserver/cache/<sha256>"}
    response = upload(alice, b"#!/bin/sh\n" + b"x" * 1000)
    assert response.status_code == 413
    assert (
        response.json()["error"]
        == "the upload is 1,010 bytes; the cache takes at most 1,000 bytes (PANDA_CACHE_MAX_MB)"
    )
    big = tarball({"data.bin": os.urandom(3000)})  # under the multipart allowance, over the limit once read
    response = alice.post("/api/v1/cache/", {"file": io.BytesIO(big)}, format="multipart")
    assert response.status_code == 413 and "at most" in response.json()["error"]
    assert not any(path.is_file() for path in cache_dir.rglob("*"))
    assert upload(alice, b"#!/bin/sh\n" + b"x" * 900).status_code == 201


def test_a_body_longer_than_it_said_is_still_cut_at_the_limit(people, cache_dir, monkeypatch):
    """The limit holds while reading, not only against Content-Length (a chunked or lying client)."""
    from tasks.services import cache

    monkeypatch.setitem(settings.PANDA, "CACHE_MAX_BYTES", 10)
    with pytest.raises(cache.TooLarge):
        cache.store(user=people["alice"], chunks=[b"12345", b"67890", b"1"])
    assert not any(path.is_file() for path in cache_dir.rglob("*"))


def test_uploads_need_a_login_and_bytes(people):
    response = upload(APIClient())
    assert response.status_code == 401
    empty = token_client(people["alice"]).post("/api/v1/cache/", b"", content_type="application/octet-stream")
    assert empty.status_code == 400 and "the upload is empty" in empty.json()["error"]


def test_who_may_read_a_cached_file(people):
    sha = upload(token_client(people["alice"])).json()["sha256"]
    site = SiteFactory(name="BNL")
    _, pilot_token = create_pilot_credential(name="factory-bnl", sites=[site])
    alice_token = Token.objects.get(user=people["alice"]).key

    by_pilot = fetch(sha, pilot_token)
    assert by_pilot.status_code == 200 and content(by_pilot) == SCRIPT
    assert by_pilot["Content-Type"] == "application/octet-stream"
    assert by_pilot["Content-Disposition"].startswith("attachment")
    assert content(fetch(sha, alice_token)) == SCRIPT
    assert content(fetch(sha, Token.objects.create(user=people["root"]).key)) == SCRIPT
    session = Client()
    session.force_login(people["alice"])
    assert content(fetch(sha, client=session)) == SCRIPT

    anonymous = fetch(sha)
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"].startswith("Bearer")
    assert "uploaders and to pilots only" in anonymous.json()["error"]
    assert fetch(sha, "not-a-token").status_code == 401
    bob = fetch(sha, Token.objects.create(user=people["bob"]).key)
    assert bob.status_code == 403 and "uploaded by someone else" in bob.json()["error"]
    grant_role(people["bob"], roles.PRODUCTION_MANAGER)
    assert fetch(sha, Token.objects.get(user=people["bob"]).key).status_code == 403
    assert fetch("0" * 64, pilot_token).status_code == 404
    assert Client().get(f"/cache/{sha.upper()}").status_code == 404  # not a cache key: no such page


def test_a_revoked_pilot_credential_reads_nothing(people):
    sha = upload(token_client(people["alice"])).json()["sha256"]
    credential, pilot_token = create_pilot_credential(name="old", sites=[SiteFactory(name="BNL")])
    credential.active = False
    credential.save()
    assert fetch(sha, pilot_token).status_code == 401


def test_a_task_may_use_only_cached_files_its_submitter_may_read(people):
    operator = grant_role(UserFactory(username="ddmops"), roles.DATA_OPERATOR)
    catalog.register_new_dataset(user=operator, name="data11.input", files=[
        {"lfn": "data11.input._00001.root", "fsize": 10, "adler32": "0000abcd"}])  # fmt: skip
    sha = upload(token_client(people["alice"])).json()["sha256"]
    spec = {"input_dataset": "data11.input", "transformation": f"http://testserver/cache/{sha}#run.sh"}
    bob = token_client(people["bob"]).post("/api/v1/tasks/", {**spec, "output_dataset": "user.bob.t1"}, format="json")
    assert bob.status_code == 403 and "uploaded by someone else" in bob.json()["error"]
    unknown = token_client(people["alice"]).post(
        "/api/v1/tasks/", {**spec, "output_dataset": "user.alice.t1", "transformation": f"http://x/cache/{'1' * 64}"},
        format="json")  # fmt: skip
    assert unknown.status_code == 400 and "upload it first" in unknown.json()["error"]
    assert not Task.objects.exists()
    alice = token_client(people["alice"]).post("/api/v1/tasks/", {**spec, "output_dataset": "user.alice.t1"},
                                               format="json")  # fmt: skip
    assert alice.status_code == 201, alice.content
    assert Task.objects.get().transformation == f"http://testserver/cache/{sha}#run.sh"


def test_the_cache_url_setting_names_the_server_pilots_use(people, monkeypatch):
    monkeypatch.setitem(settings.PANDA, "CACHE_URL", "https://panda.example.org")
    answer = upload(token_client(people["alice"])).json()
    assert answer["url"] == f"https://panda.example.org/cache/{answer['sha256']}"

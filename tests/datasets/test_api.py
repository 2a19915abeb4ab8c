"""The catalog REST API (docs/catalog-api.md): bulk calls, refusals, paging, streaming, permissions."""

import json

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from datasets.models import Dataset, DatasetFile, File, FileReplica
from datasets.services import replicas
from datasets.tasks import purge_erased_datasets
from pandamon.models import WorkerRun

from ..factories import SiteFactory, UserFactory, grant_role

pytestmark = pytest.mark.django_db
AOD = "mc11.007216.singlepart_mu18.recon.AOD.v11000303"


def files(prefix, n, size=100):
    return [{"lfn": f"{prefix}._{i:05d}.pool.root.1", "fsize": size, "adler32": f"{i:08x}"} for i in range(n)]


def client_for(user):
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token.key}")
    return client


@pytest.fixture
def operator(db):
    user = UserFactory(username="ddmop")
    grant_role(user, "data_operator")
    return user


@pytest.fixture
def ops(operator):
    return client_for(operator)


@pytest.fixture
def alice(db):
    return client_for(UserFactory(username="alice"))


@pytest.fixture
def storage_site(db, tmp_path):
    return SiteFactory(name="CERN-PROD", storage_endpoint=str(tmp_path / "cern"))


def register(client, *datasets):
    return client.post("/api/v1/datasets/", {"datasets": list(datasets)}, format="json")


def test_bulk_registration_registers_every_dataset_with_its_files(ops):
    answer = register(
        ops,
        {"name": AOD, "files": files("aod", 3)},
        {"name": "csc11.005001.pythia.evgen.EVNT.v1", "kind": "datablock", "files": files("evnt", 2)},
        {"name": "mc11.all.AOD", "kind": "container"},
    )
    assert answer.status_code == 201, answer.json()
    by_name = {d["name"]: d for d in answer.json()["datasets"]}
    assert (by_name[AOD]["n_files"], by_name[AOD]["bytes"], by_name[AOD]["state"]) == (3, 300, "open")
    assert (by_name[AOD]["category"], by_name[AOD]["format"]) == ("mc", "AOD")
    assert by_name["csc11.005001.pythia.evgen.EVNT.v1"]["state"] == "frozen"
    assert by_name["mc11.all.AOD"]["latest_version"] == 0
    detail = ops.get(f"/api/v1/datasets/{AOD}/").json()
    assert [(v["number"], v["state"], v["n_files"]) for v in detail["versions"]] == [(1, "open", 3)]


@pytest.mark.parametrize(
    "second, status, message",
    [
        ({"name": "mc11.x", "files": [{"lfn": "aod._00000.pool.root.1", "fsize": 1, "adler32": "ffffffff"}]}, 400,
         "listed twice with different"),
        ({"name": "mc11.y", "files": [{"lfn": "bad/name", "fsize": 1, "adler32": "00000001"}]}, 400, "lfn"),
        ({"name": "mc11.z", "files": [{"lfn": "ok.1", "fsize": -1, "adler32": "00000001"}]}, 400, "fsize"),
        ({"name": "bad name"}, 400, "not a valid dataset name"),
        ({"name": AOD}, 400, "listed twice"),
        ({"name": "mc11.c", "kind": "container", "files": files("c", 1)}, 400, "holds datasets, not files"),
        ({"name": "mc11.k", "kind": "bucket"}, 400, "kind"),
        ({"name": "user.bob.data"}, 403, "belongs to user 'bob'"),
    ],
)  # fmt: skip
def test_a_bad_dataset_refuses_the_whole_call_and_writes_nothing(ops, alice, second, status, message):
    client = alice if second["name"].startswith("user.") else ops
    first = {"name": "user.alice.ok" if client is alice else AOD, "files": files("aod", 2)}
    answer = register(client, first, second)
    assert answer.status_code == status
    assert message in answer.json()["error"]
    assert not Dataset.objects.exists() and not File.objects.exists()


def test_existing_names_conflict_and_garbage_bodies_are_400(ops):
    assert register(ops, {"name": AOD}).status_code == 201
    conflict = register(ops, {"name": AOD})
    assert conflict.status_code == 409 and "already exists" in conflict.json()["error"]
    for body in ([], {"datasets": "x"}, {"datasets": [1]}, {"nothing": []}):
        answer = ops.post("/api/v1/datasets/", body, format="json")
        assert answer.status_code == 400, body
        assert answer.json()["error"]


def test_writes_need_a_token_and_users_write_only_their_own_datasets(ops, alice):
    assert APIClient().post("/api/v1/datasets/", {"datasets": [{"name": "user.x.a"}]}, format="json").status_code in (
        401,
        403,
    )
    assert register(alice, {"name": "user.alice.mine", "files": files("mine", 1)}).status_code == 201
    assert register(alice, {"name": AOD}).status_code == 403
    bob = client_for(UserFactory(username="bob"))
    answer = bob.post("/api/v1/datasets/user.alice.mine/files/", {"files": files("b", 1)}, format="json")
    assert answer.status_code == 403 and "belongs to user 'alice'" in answer.json()["error"]
    assert Dataset.objects.get(name="user.alice.mine").n_files == 1


def test_listing_filters_and_keyset_pages(ops):
    names = [f"mc11.{n:06d}.physics.recon.AOD.v1" for n in range(5)] + ["csc11.000001.p.evgen.EVNT.v1"]
    assert register(ops, *[{"name": name} for name in names]).status_code == 201
    page = ops.get("/api/v1/datasets/?name=mc11.*.AOD.*&limit=2").json()
    assert [d["name"] for d in page["results"]] == names[:2]
    seen = [d["name"] for d in page["results"]]
    while page["next"]:
        page = ops.get(page["next"]).json()
        seen += [d["name"] for d in page["results"]]
    assert seen == names[:5]
    assert [d["name"] for d in ops.get("/api/v1/datasets/?category=csc").json()["results"]] == names[5:]
    assert len(ops.get("/api/v1/datasets/?format=EVNT&stage=evgen").json()["results"]) == 1
    bad = ops.get("/api/v1/datasets/?name=mc11.%25")
    assert bad.status_code == 400 and "pattern" in bad.json()["error"]


def test_files_versions_and_states(ops):
    register(ops, {"name": AOD, "files": files("v1", 2)})
    added = ops.post(f"/api/v1/datasets/{AOD}/files/", {"files": files("v1b", 1)}, format="json").json()
    assert (added["added"], added["dataset"]["n_files"]) == (1, 3)
    assert ops.post(f"/api/v1/datasets/{AOD}/versions/", {"files": files("v2", 2)}, format="json").status_code == 201
    latest = ops.get(f"/api/v1/datasets/{AOD}/files/").json()["results"]
    first = ops.get(f"/api/v1/datasets/{AOD}/files/?version=1").json()["results"]
    assert (len(latest), len(first)) == (5, 3)
    assert {f["version_added"] for f in latest} == {1, 2}
    assert ops.get(f"/api/v1/datasets/{AOD}/files/?version=3").status_code == 404
    assert ops.get(f"/api/v1/datasets/{AOD}/files/?version=x").status_code == 400
    assert ops.post(f"/api/v1/datasets/{AOD}/close/").json()["state"] == "closed"
    refused = ops.post(f"/api/v1/datasets/{AOD}/files/", {"files": files("late", 1)}, format="json")
    assert refused.status_code == 409 and "open dataset" in refused.json()["error"]
    assert ops.post(f"/api/v1/datasets/{AOD}/freeze/").json()["state"] == "frozen"
    frozen = ops.post(f"/api/v1/datasets/{AOD}/versions/", {}, format="json")
    assert frozen.status_code == 409 and "frozen" in frozen.json()["error"]
    assert DatasetFile.objects.filter(dataset__name=AOD).count() == 5


def test_a_known_file_with_another_checksum_is_refused(ops):
    register(ops, {"name": AOD, "files": files("f", 1)})
    other = [{"lfn": "f._00000.pool.root.1", "fsize": 100, "adler32": "deadbeef"}]
    answer = register(ops, {"name": "mc11.other", "files": other})
    assert answer.status_code == 409 and "another size or checksum" in answer.json()["error"]
    assert not Dataset.objects.filter(name="mc11.other").exists()


def test_file_listings_page_and_stream_as_ndjson(ops):
    register(ops, {"name": AOD, "files": files("big", 4500)})
    page = ops.get(f"/api/v1/datasets/{AOD}/files/?limit=1000").json()
    assert len(page["results"]) == 1000 and page["next"]
    for url in (f"/api/v1/datasets/{AOD}/files/?stream=1",):
        answer = ops.get(url)
        assert answer.streaming and answer["Content-Type"] == "application/x-ndjson"
        lines = b"".join(answer.streaming_content).decode().splitlines()
        rows = [json.loads(line) for line in lines]
        assert len(rows) == 4500 and rows[0]["lfn"] == "big._00000.pool.root.1"
        assert [r["lfn"] for r in rows] == sorted(r["lfn"] for r in rows)
    by_accept = ops.get(f"/api/v1/datasets/{AOD}/files/", HTTP_ACCEPT="application/x-ndjson")
    assert by_accept.streaming and len(b"".join(by_accept.streaming_content).splitlines()) == 4500
    missing = ops.get("/api/v1/datasets/mc11.none/files/", HTTP_ACCEPT="application/x-ndjson")
    assert missing.status_code == 404 and "no dataset" in json.loads(missing.content)["error"]


def test_replicas_completeness_lookup_and_datasets_in_site(ops, storage_site):
    register(ops, {"name": AOD, "files": files("r", 4)}, {"name": "mc11.second", "files": files("s", 2)})
    location = ops.post(f"/api/v1/datasets/{AOD}/replicas/", {"site": "CERN-PROD"}, format="json")
    assert location.status_code == 201 and location.json()["files_present"] == 0
    two = [{"lfn": f["lfn"]} for f in files("r", 2)]
    assert ops.post("/api/v1/replicas/", {"site": "CERN-PROD", "replicas": two}, format="json").json() == {"added": 2}
    again = ops.post("/api/v1/replicas/", {"site": "CERN-PROD", "replicas": two}, format="json").json()
    assert again == {"added": 0}
    listed = ops.get(f"/api/v1/datasets/{AOD}/replicas/").json()["results"]
    assert [(r["site"], r["files_present"], r["n_files"], r["complete"]) for r in listed] == [
        ("CERN-PROD", 2, 4, False)
    ]
    complete = ops.post(
        "/api/v1/datasets/mc11.second/replicas/", {"site": "CERN-PROD", "complete": True}, format="json"
    ).json()
    assert complete["complete"] is True
    in_site = ops.get("/api/v1/replicas/datasets/?site=CERN-PROD&complete=true").json()["results"]
    assert [r["dataset"] for r in in_site] == ["mc11.second"]
    incomplete = ops.get("/api/v1/replicas/datasets/?site=CERN-PROD&complete=false").json()["results"]
    assert [r["dataset"] for r in incomplete] == [AOD]
    streamed = ops.get("/api/v1/replicas/datasets/?site=CERN-PROD&stream=1")
    assert len(b"".join(streamed.streaming_content).splitlines()) == 2
    lfns = [files("r", 1)[0]["lfn"], files("r", 4)[3]["lfn"]]
    found = ops.post("/api/v1/replicas/lookup/", {"lfns": lfns}, format="json").json()["replicas"]
    assert found[lfns[1]] == []
    assert found[lfns[0]][0]["site"] == "CERN-PROD"
    assert found[lfns[0]][0]["pfn"] == replicas.deterministic_pfn(storage_site, lfns[0])
    assert ops.get("/api/v1/replicas/datasets/?site=NOWHERE").status_code == 400
    unknown = ops.post("/api/v1/replicas/", {"site": "CERN-PROD", "replicas": [{"lfn": "nope"}]}, format="json")
    assert unknown.status_code == 404 and "no file named nope" in unknown.json()["error"]


def test_claims_block_replica_deletion(ops, storage_site):
    register(ops, {"name": AOD, "files": files("c", 2)})
    ops.post(f"/api/v1/datasets/{AOD}/replicas/", {"site": "CERN-PROD", "complete": True}, format="json")
    claim = ops.post(f"/api/v1/datasets/{AOD}/replicas/CERN-PROD/claims/", {"lifetime_s": 3600}, format="json")
    assert claim.status_code == 201 and claim.json()["owner_name"] == "ddmop"
    refused = ops.delete(f"/api/v1/datasets/{AOD}/replicas/CERN-PROD/")
    assert refused.status_code == 409 and "claimed by ddmop" in refused.json()["error"]
    assert FileReplica.objects.count() == 2
    assert (
        ops.post(f"/api/v1/datasets/{AOD}/replicas/CERN-PROD/claims/", {"lifetime_s": 1}, format="json").status_code
        == 400
    )


def test_containers_members_and_cycles(ops):
    register(ops, {"name": "mc11.c1", "kind": "container"}, {"name": "mc11.c2", "kind": "container"}, {"name": AOD})
    assert ops.post("/api/v1/containers/mc11.c1/members/", {"datasets": [AOD, "mc11.c2"]}, format="json").json() == {
        "added": 2
    }
    assert ops.get("/api/v1/containers/mc11.c1/").json()["members"] == [AOD, "mc11.c2"]
    cycle = ops.post("/api/v1/containers/mc11.c2/members/", {"datasets": ["mc11.c1"]}, format="json")
    assert cycle.status_code == 409 and "cycle" in cycle.json()["error"]
    not_container = ops.post(f"/api/v1/containers/{AOD}/members/", {"datasets": ["mc11.c1"]}, format="json")
    assert not_container.status_code == 400 and "not a container" in not_container.json()["error"]
    removed = ops.post("/api/v1/containers/mc11.c1/members/remove/", {"datasets": [AOD]}, format="json").json()
    assert removed == {"removed": 1}
    assert [c["name"] for c in ops.get("/api/v1/containers/").json()["results"]] == ["mc11.c1", "mc11.c2"]


def test_a_file_names_its_originating_dataset_and_every_dataset_holding_it(ops):
    shared = files("shared", 1)
    register(ops, {"name": AOD, "files": shared}, {"name": "mc11.copy", "kind": "datablock", "files": shared})
    detail = ops.get(f"/api/v1/files/{shared[0]['lfn']}/").json()
    assert detail["origin_dataset"] == AOD and detail["datasets"] == [AOD, "mc11.copy"]
    assert [f["lfn"] for f in ops.get("/api/v1/files/?lfn=shared.*").json()["results"]] == [shared[0]["lfn"]]


def test_erase_hides_at_once_and_the_periodic_task_purges(ops):
    register(ops, {"name": AOD, "files": files("e", 2)})
    assert ops.delete(f"/api/v1/datasets/{AOD}/").status_code == 200
    assert ops.get(f"/api/v1/datasets/{AOD}/").status_code == 404
    assert register(ops, {"name": AOD}).status_code == 409  # names are never reused
    Dataset.objects.filter(name=AOD).update(erased_at="2000-01-01T00:00:00Z")
    purge_erased_datasets()
    assert not Dataset.objects.exists() and not DatasetFile.objects.exists()
    counts = WorkerRun.objects.get(name="datasets.purge_erased_datasets").counts
    assert counts == {"datasets": 1, "file_replicas": 0, "files": 2}


def test_the_openapi_schema_documents_the_catalog():
    schema = APIClient().get("/api/schema/?response_format=json").json()
    for path in ("/api/v1/datasets/", "/api/v1/datasets/{name}/files/", "/api/v1/replicas/lookup/",
                 "/api/v1/replicas/datasets/", "/api/v1/containers/{name}/members/", "/api/v1/files/{lfn}/"):  # fmt: skip
        assert path in schema["paths"], path


def test_a_datablock_is_located_whole_or_not_at_all(ops, storage_site):
    register(ops, {"name": "mc11.block", "kind": "datablock", "files": files("blk", 3)})
    partial = ops.post("/api/v1/datasets/mc11.block/replicas/", {"site": "CERN-PROD"}, format="json")
    assert partial.status_code == 400 and "all of it or none" in partial.json()["error"]
    whole = ops.post("/api/v1/datasets/mc11.block/replicas/", {"site": "CERN-PROD", "complete": True}, format="json")
    assert whole.status_code == 201 and whole.json()["complete"] is True

"""The dataset browser pages: /datasets/, a dataset, a file, /blocks/ (HTML and their JSON twins)."""

from collections import Counter

import pytest
from django.db.models import Count
from django.test import Client

from datasets.models import Dataset
from datasets.services import catalog, containers, replicas
from jobs.choices import FileType, JobStatus
from pandamon import roles

from ..factories import JobFactory, JobFileFactory, SiteFactory, UserFactory, grant_role

pytestmark = pytest.mark.django_db
AOD = "mc11.007216.singlepart_mu18.recon.AOD.v11000303"
ESD = "mc11.007216.singlepart_mu18.recon.ESD.v11000303"
EVNT = "csc11.005001.pythia_minbias.evgen.EVNT.v11000101"
USER = "user.alice.ntuple.v1"
CONTAINER = "mc11.007216.singlepart_mu18.recon.AOD.cont"
DIS = AOD + "_dis17"


def files(prefix, n):
    return [{"lfn": f"{prefix}._{i:05d}.pool.root.1", "fsize": 1000 + i, "adler32": f"{i:08x}"} for i in range(n)]


def at_site(ops, site, prefix, n):
    replicas.register_file_replicas(
        user=ops, site_name=site, replicas=[{"lfn": f"{prefix}._{i:05d}.pool.root.1"} for i in range(n)]
    )


@pytest.fixture
def ops():
    return grant_role(UserFactory(username="ops"), roles.DATA_OPERATOR)


@pytest.fixture
def grid(ops):
    """AOD: 8 files, complete at BNL and BNL2, 1 file (12%) at CERN; ESD: 4 files, complete at CERN;
    EVNT: 2 files nowhere; a user dataset; a container of AOD and ESD; a dispatch block."""
    for name, cloud in (("BNL", "US"), ("BNL2", "US"), ("CERN", "CERN"), ("LYON", "FR")):
        SiteFactory(name=name, cloud__name=cloud, storage_endpoint=f"/storage/{name}")
    catalog.register_new_datasets(
        user=ops,
        specs=[
            {"name": AOD, "files": files("aod", 8)},
            {"name": ESD, "files": files("esd", 4)},
            {"name": EVNT, "files": files("evnt", 2)},
            {"name": USER, "files": files("user", 1)},
            {"name": DIS, "kind": "datablock", "files": files("dis", 2)},
            {"name": CONTAINER, "kind": "container"},
        ],
    )
    containers.add_to_container(user=ops, name=CONTAINER, members=[AOD, ESD])
    at_site(ops, "BNL", "aod", 8)
    at_site(ops, "BNL2", "aod", 8)
    at_site(ops, "CERN", "aod", 1)
    at_site(ops, "CERN", "esd", 4)
    return ops


def page(url, **params):
    response = Client().get(url, {**params, "json": ""})
    assert response.status_code == 200, response.content[:300]
    return response.json()


def names(data):
    return [row["name"] for row in data["rows"]]


def test_categories_count_the_whole_catalog(grid):
    data = page("/datasets/", category="csc")
    direct = dict(Dataset.objects.values_list("category").annotate(n=Count("pk")).order_by())
    counted = {c["name"]: c["count"] for c in data["categories"]}
    assert {name: n for name, n in counted.items() if n} == direct
    assert counted["mc"] == 3 and counted["user"] == 1 and counted["dispatch"] == 1 and counted["T0"] == 0
    assert names(data) == [EVNT]  # the chips count the catalog, the rows are the selection


def test_facets_count_the_selection_and_filter(grid):
    data = page("/datasets/", category="mc")
    assert data["meta"]["total"] == 3
    facets = {name: {f["value"]: f["count"] for f in values} for name, values in data["facets"].items()}
    assert facets["kind"] == {"dataset": 2, "container": 1}
    assert facets["format"] == {"AOD": 2, "ESD": 1}
    assert facets["series"] == {"mc11": 3}
    assert names(page("/datasets/", format="ESD|EVNT")) == [EVNT, ESD]
    assert names(page("/datasets/", name="mc11.*.AOD.*", kind="!container")) == [AOD, DIS]
    assert names(page("/datasets/", owner="ops", category="user")) == [USER]


def test_site_restriction_keeps_each_dataset_once_and_notsite_is_its_complement(grid):
    at_bnl = names(page("/datasets/", site="BNL*"))
    assert at_bnl == [AOD]  # at BNL and BNL2: one row, not two
    assert names(page("/datasets/", site="CERN")) == [AOD, ESD]
    assert names(page("/datasets/", site="CERN", minpct="100")) == [ESD]
    assert names(page("/datasets/", minpct="100")) == [AOD, ESD]
    everything = set(names(page("/datasets/")))
    assert set(names(page("/datasets/", notsite="CERN"))) == everything - {AOD, ESD}
    assert names(page("/datasets/", site="BNL", notsite="CERN")) == []
    assert page("/datasets/", site="LYON")["rows"] == []


def test_site_chooser_groups_sites_by_cloud(grid):
    html = Client().get("/datasets/").content.decode()
    assert '<optgroup label="US"><option>BNL</option><option>BNL2</option></optgroup>' in html
    assert 'name="notsite"' in html


def test_replicas_under_a_quarter_complete_are_hidden_unless_asked(grid):
    data = page(f"/datasets/{AOD}/")
    assert [(r["site_name"], r["pct"]) for r in data["replicas"]["rows"]] == [("BNL", 100.0), ("BNL2", 100.0)]
    assert data["replicas"]["hidden"] == 1
    assert "1 replica under 25% complete hidden" in Client().get(f"/datasets/{AOD}/").content.decode()
    shown = page(f"/datasets/{AOD}/", allreplicas="1")["replicas"]
    assert [(r["site_name"], r["pct"], r["complete"]) for r in shown["rows"]] == [
        ("BNL", 100.0, True), ("BNL2", 100.0, True), ("CERN", 12.5, False)
    ]  # fmt: skip
    assert shown["hidden"] == 0


def test_dataset_page_pages_files_with_their_replica_sites(grid):
    first = page(f"/datasets/{AOD}/", limit="3")
    assert first["dataset"]["n_files"] == 8 and first["files"]["meta"]["total"] == 8
    seen = [row["lfn"] for row in first["files"]["rows"]]
    assert first["files"]["rows"][0]["replicas"] == [
        {"site": "BNL", "state": "available"}, {"site": "BNL2", "state": "available"},
        {"site": "CERN", "state": "available"}
    ]  # fmt: skip
    following = first["files"]["meta"]["next"]
    while following:
        data = Client().get(f"/datasets/{AOD}/{following}&json").json()
        seen += [row["lfn"] for row in data["files"]["rows"]]
        following = data["files"]["meta"]["next"]
    assert seen == sorted(f["lfn"] for f in files("aod", 8))
    assert [row["lfn"] for row in page(f"/datasets/{AOD}/", lfn="*00007*")["files"]["rows"]] == [seen[-1]]


def test_versions_list_their_own_files(grid):
    catalog.register_new_version(user=grid, name=EVNT, files=files("evnt2", 1))
    latest = page(f"/datasets/{EVNT}/")
    assert [v["number"] for v in latest["versions"]] == [2, 1]
    assert latest["files"]["meta"]["total"] == 3
    assert page(f"/datasets/{EVNT}/", version="1")["files"]["meta"]["total"] == 2


def test_containers_and_members(grid):
    data = page(f"/datasets/{CONTAINER}/")
    assert [m["name"] for m in data["members"]["rows"]] == [AOD, ESD] and data["members"]["total"] == 2
    assert data["files"] is None and data["versions"] == []
    assert page(f"/datasets/{ESD}/")["containers"] == [CONTAINER]
    assert page(f"/datasets/{CONTAINER}/".rstrip("/") + "//")["dataset"]["name"] == CONTAINER  # DQ2's 'container/'


def test_file_page(grid):
    lfn = "aod._00001.pool.root.1"
    job = JobFactory(status=JobStatus.RUNNING, computing_site=SiteFactory(name="BNL"))
    JobFileFactory(job=job, type=FileType.INPUT, lfn=lfn, dataset=AOD, prod_dblock=AOD, dispatch_dblock=DIS)
    data = page(f"/files/{lfn}/")
    assert data["file"]["lfn"] == lfn and data["file"]["fsize"] == 1001
    assert data["origin_dataset"] == AOD
    assert [(d["name"], d["version_added"]) for d in data["datasets"]] == [(AOD, 1)]
    assert [r["site_name"] for r in data["replicas"]] == ["BNL", "BNL2"]
    assert data["replicas"][0]["pfn"].startswith("/storage/BNL/")
    assert [(j["pandaid"], j["type"], j["job_status"], j["site"]) for j in data["jobs"]] == [
        (job.pandaid, "input", "running", "BNL")
    ]
    html = Client().get(f"/files/{lfn}/").content.decode()
    assert f'href="/datasets/{AOD}/"' in html and f'href="/jobs/{job.pandaid}/"' in html


def test_file_page_lists_every_dataset_holding_it(grid):
    catalog.register_new_version(user=grid, name=ESD, files=[files("aod", 1)[0]])
    data = page("/files/aod._00000.pool.root.1/")
    assert data["origin_dataset"] == AOD
    assert [(d["name"], d["version_added"]) for d in data["datasets"]] == [(AOD, 1), (ESD, 2)]


def test_dataset_page_lists_the_latest_jobs_naming_it(grid):
    old, new = JobFactory(status=JobStatus.FINISHED), JobFactory(status=JobStatus.FAILED)
    for job in (old, new):
        for n in range(2):  # two files of one job: one row
            JobFileFactory(job=job, type=FileType.INPUT, lfn=f"aod._0000{n}.pool.root.1", dataset=AOD, prod_dblock=AOD)
    JobFileFactory(job=new, type=FileType.OUTPUT, lfn="out.root", dataset=ESD, destination_dblock=ESD + "_sub1")
    JobFileFactory(job=old, type=FileType.INPUT, lfn="aod._00000.pool.root.1", dataset=AOD, dispatch_dblock=DIS)
    jobs = page(f"/datasets/{AOD}/")["jobs"]
    assert [(j["pandaid"], j["type"], j["files"], j["job_status"]) for j in jobs["rows"]] == [
        (new.pandaid, "input", 2, "failed"), (old.pandaid, "input", 3, "finished")
    ]  # fmt: skip
    assert [j["pandaid"] for j in page(f"/datasets/{ESD}/")["jobs"]["rows"]] == [new.pandaid]
    dispatch = page(f"/datasets/{DIS}/")["jobs"]
    assert dispatch["column"] == "dispatch_dblock" and [j["pandaid"] for j in dispatch["rows"]] == [old.pandaid]


@pytest.mark.parametrize("url", [f"/datasets/{AOD}.nope/", "/datasets/no.such.dataset/", "/datasets/bad%25name/",
                                 "/files/no.such.file/"])  # fmt: skip
def test_unknown_names_are_404(grid, url):
    response = Client().get(url)
    assert response.status_code == 404
    assert Client().get(url, {"json": ""}).json()["error"]


def test_erased_datasets_are_gone(grid):
    catalog.erase_dataset(user=grid, name=EVNT)
    assert Client().get(f"/datasets/{EVNT}/").status_code == 404
    assert EVNT not in names(page("/datasets/"))


@pytest.mark.parametrize(
    "url, params, words",
    [
        ("/datasets/", {"bogus": "1"}, "unknown parameter bogus"),
        ("/datasets/", {"kind": "folder"}, "not one of"),
        ("/datasets/", {"name": "mc11.%"}, "not a valid pattern"),
        ("/datasets/", {"site": "BNL;drop"}, "not a valid pattern"),
        ("/datasets/", {"minpct": "200"}, "percentage"),
        ("/datasets/", {"minpct": "Not specified"}, "percentage"),
        ("/datasets/", {"minpct": "50:60"}, "percentage"),
        ("/datasets/", {"sortby": "color"}, "sortby"),
        ("/datasets/", {"days": "x"}, "days"),
        (f"/datasets/{AOD}/", {"version": "9"}, "version"),
        (f"/datasets/{AOD}/", {"allreplicas": "maybe"}, "allreplicas"),
        (f"/datasets/{AOD}/", {"limit": "0"}, "limit"),
        (f"/datasets/{AOD}/", {"after": "garbage"}, "cursor"),
        (f"/datasets/{AOD}/", {"colour": "red"}, "unknown parameter"),
        (f"/datasets/{CONTAINER}/", {"version": "1"}, "container"),
        ("/blocks/", {"jobstatus": "sleeping"}, "not one of"),
        ("/blocks/", {"limit": "-1"}, "limit"),
        ("/blocks/", {"where": "x"}, "unknown parameter"),
    ],
)
def test_bad_parameters_are_400_with_a_message(grid, url, params, words):
    response = Client().get(url, params)
    assert response.status_code == 400
    assert words in response.content.decode()
    assert words in Client().get(url, {**params, "json": ""}).json()["error"]


@pytest.mark.parametrize("url", ["/datasets/", "/datasets/?category=mc&site=BNL", "/blocks/"])
def test_pages_render_on_an_empty_database(url):
    response = Client().get(url)
    assert response.status_code == 200 and b"<h1>" in response.content
    assert Client().get(url, HTTP_ACCEPT="application/json").json()["rows"] == []


def test_html_shows_what_the_json_twin_says(grid):
    data = page("/datasets/", category="mc")
    html = Client().get("/datasets/", {"category": "mc"}).content.decode()
    for row in data["rows"]:
        assert f'href="/datasets/{row["name"]}/"' in html
    for category in data["categories"]:
        assert f"{category['name']} <small>{category['count']}</small>" in html
    detail = page(f"/datasets/{AOD}/")
    html = Client().get(f"/datasets/{AOD}/").content.decode()
    assert str(detail["dataset"]["duid"]) in html
    for row in detail["files"]["rows"]:
        assert f'href="/files/{row["lfn"]}/"' in html
    for replica in detail["replicas"]["rows"]:
        assert f"{replica['files_present']} / 8" in html


def test_blocks_count_jobs_per_state_and_site(grid):
    bnl, cern = SiteFactory(name="BNL"), SiteFactory(name="CERN")
    for status, site, block in ((JobStatus.RUNNING, bnl, AOD), (JobStatus.RUNNING, bnl, AOD),
                                (JobStatus.FAILED, cern, AOD), (JobStatus.DEFINED, None, ESD)):  # fmt: skip
        job = JobFactory(status=status, computing_site=site)
        for n in range(2):  # two input files of one block: one job
            JobFileFactory(job=job, type=FileType.INPUT, lfn=f"{block}.{job.pk}.{n}", dataset=block, prod_dblock=block)
        JobFileFactory(job=job, type=FileType.OUTPUT, lfn=f"out.{job.pk}", dataset="user.x.out")
    data = page("/blocks/")
    assert data["meta"]["total"] == 2
    aod, esd = data["rows"]
    assert (aod["block"], aod["jobs"], aod["files"]) == (AOD, 3, 6)
    assert aod["states"] == {"running": 2, "failed": 1}
    assert aod["sites"] == [["BNL", 2], ["CERN", 1]]
    assert aod["catalog"]["n_sites"] == 3 and esd["catalog"]["kind"] == "dataset"
    assert esd["sites"] == [["(not brokered)", 1]]
    assert {f["value"]: f["count"] for f in data["facets"]["jobstatus"]} == {"running": 2, "failed": 1, "defined": 1}
    assert [row["block"] for row in page("/blocks/", computingsite="CERN")["rows"]] == [AOD]
    assert page("/blocks/", block="user.*")["rows"] == []
    assert Counter(row["block"] for row in page("/blocks/", limit="1")["rows"]) == Counter([AOD])


def test_api_shares_the_filters(grid):
    answer = Client().get("/api/v1/datasets/", {"site": "BNL*"})
    assert [d["name"] for d in answer.json()["results"]] == [AOD]
    assert [d["name"] for d in Client().get("/api/v1/datasets/", {"notsite": "CERN", "kind": "dataset"}).json()[
        "results"]] == [EVNT, USER]  # fmt: skip
    refused = Client().get("/api/v1/datasets/", {"name": "mc11.%"})
    assert refused.status_code == 400 and "pattern" in refused.json()["error"]

"""The queue and storage descriptions pilot3 reads (/cache/schedconfig/..., /cache/ddmendpoints.json)."""

import pytest
from django.test import Client

from sites.choices import SiteStatus

from ..factories import SiteFactory

pytestmark = pytest.mark.django_db


def get(path):
    response = Client().get(path)
    return response.status_code, response.json() if response["Content-Type"] == "application/json" else None


def test_a_queue_is_described_from_its_site():
    SiteFactory(name="LOCAL_TEST", max_disk_mb=20000, max_memory_mb=3000, max_walltime_s=7200, cores=8,
                storage_endpoint="/data/se", status=SiteStatus.TEST)  # fmt: skip
    status, queue = get("/cache/schedconfig/LOCAL_TEST.all.json")
    assert status == 200
    # The minimum pilot3 needs, with the values it must see (panda-wire.md §2).
    assert queue["name"] == queue["nickname"] == queue["panda_resource"] == queue["atlas_site"] == "LOCAL_TEST"
    assert queue["state"] == "ACTIVE" and queue["status"] == "test"
    assert (queue["maxwdir"], queue["maxrss"], queue["maxtime"], queue["corecount"]) == (20000, 3000, 7200, 8)
    assert queue["timefloor"] == 0 and queue["is_cvmfs"] is False
    assert queue["copytools"] == {"mv": {"setup": ""}}
    assert queue["acopytools"] == {"pr": ["mv"], "pw": ["mv"], "pl": ["mv"]}
    assert queue["astorages"]["pw"] == ["LOCAL_TEST"]
    assert "mv_final_destination" in queue["catchall"]


def test_the_cric_forms_key_queues_by_name():
    SiteFactory(name="Q1")
    SiteFactory(name="Q2")
    status, one = get("/cache/schedconfig/Q1.json")
    assert status == 200 and list(one) == ["Q1"] and one["Q1"]["name"] == "Q1"
    status, every = get("/cache/schedconfig.json")
    assert {"Q1", "Q2"} <= set(every)


def test_an_unknown_queue_is_a_404():
    status, _ = get("/cache/schedconfig/NOWHERE.all.json")
    assert status == 404


def test_a_directory_storage_is_written_with_mv_through_file_urls():
    SiteFactory(name="DIR", storage_endpoint="file:///data/se/")
    status, endpoints = get("/cache/ddmendpoints.json")
    assert status == 200
    endpoint = endpoints["DIR"]
    assert endpoint["state"] == "ACTIVE" and endpoint["is_deterministic"] is True
    # Lists of dicts: pilot3's stage-out crashes on lists of lists.
    assert endpoint["arprotocols"]["write_lan"] == [
        {"endpoint": "file://localhost", "path": "/data/se", "flavour": "POSIX"}
    ]


def test_an_http_only_storage_is_described_for_gfal_over_davs():
    SiteFactory(name="WEB", storage_endpoint="", storage_http_url="https://se.example.org:2880/atlas/disk")
    _, queue = get("/cache/schedconfig/WEB.all.json")
    assert queue["copytools"] == {"gfalcopy": {"setup": ""}} and queue["catchall"] == ""
    _, endpoints = get("/cache/ddmendpoints.json")
    assert endpoints["WEB"]["arprotocols"]["read_wan"] == [
        {"endpoint": "davs://se.example.org:2880", "path": "/atlas/disk", "flavour": "WEBDAV"}
    ]


def test_a_site_without_storage_has_no_protocols():
    SiteFactory(name="NOSE", storage_endpoint="", storage_http_url="")
    _, endpoints = get("/cache/ddmendpoints.json")
    assert endpoints["NOSE"]["arprotocols"] == {} and endpoints["NOSE"]["rprotocols"] == {}

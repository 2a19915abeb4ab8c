"""The HTTP layer against a scripted catalog: token, error lines, retries, pages, NDJSON streams."""

import json

import pytest

from client.api import Catalog
from client.errors import ConnectionProblem, NotFound, ServerError


def _catalog(server, **kwargs):
    sleeps = []
    kwargs.setdefault("sleep", sleeps.append)
    catalog = Catalog(server.url, **kwargs)
    catalog.sleeps = sleeps
    return catalog


def test_token_is_sent_as_bearer(catalog_server):
    catalog_server.route("GET", "/api/v1/sites/BNL/", (200, {"name": "BNL"}))
    assert _catalog(catalog_server, token="s3cret").get("/api/v1/sites/BNL/") == {"name": "BNL"}
    assert catalog_server.log[0]["headers"]["Authorization"] == "Bearer s3cret"


def test_reads_are_retried_on_5xx_with_growing_pauses(catalog_server):
    catalog_server.route("GET", "/api/v1/x/", (503, {"error": "busy"}), (502, b"<html>"), (200, {"ok": 1}))
    catalog = _catalog(catalog_server)
    assert catalog.get("/api/v1/x/") == {"ok": 1}
    assert len(catalog_server.log) == 3
    assert len(catalog.sleeps) == 2 and catalog.sleeps[1] > catalog.sleeps[0]


def test_reads_give_up_after_the_tries_with_the_servers_message(catalog_server):
    catalog_server.route("GET", "/api/v1/x/", (500, {"error": "database is down"}))
    with pytest.raises(ServerError, match=r"server error \(HTTP 500\) on GET /api/v1/x/: database is down"):
        _catalog(catalog_server, tries=3).get("/api/v1/x/")
    assert len(catalog_server.log) == 3


def test_an_answer_cut_off_midway_is_read_again(catalog_server):
    catalog_server.route("GET", "/api/v1/x/", (200, b'{"ok": ', "truncated"), (200, {"ok": 1}))
    assert _catalog(catalog_server).get("/api/v1/x/") == {"ok": 1}
    catalog_server.route("POST", "/api/v1/y/", (200, b'{"ok": ', "truncated"))
    with pytest.raises(ConnectionProblem, match="answer to POST /api/v1/y/ broke off"):
        _catalog(catalog_server).post("/api/v1/y/")


def test_writes_are_not_repeated_after_a_5xx(catalog_server):
    catalog_server.route("POST", "/api/v1/datasets/", (503, {"error": "busy"}))
    with pytest.raises(ServerError):
        _catalog(catalog_server).post("/api/v1/datasets/", {"datasets": []})
    assert len(catalog_server.log) == 1


def test_bulk_lookup_is_a_read_and_is_retried(catalog_server):
    catalog_server.route("POST", "/api/v1/replicas/lookup/", (503, {}), (200, {"replicas": {}}))
    assert _catalog(catalog_server).post("/api/v1/replicas/lookup/", {"lfns": ["a"]}, read_only=True)
    assert [entry["body"] for entry in catalog_server.log] == [{"lfns": ["a"]}] * 2


def test_refusals_carry_the_servers_one_line_error(catalog_server):
    catalog_server.route("POST", "/api/v1/datasets/", (403, {"error": "dataset user.bob.x belongs to user 'bob'"}))
    catalog_server.route("GET", "/api/v1/datasets/nope/", (404, {"error": "no dataset named nope"}))
    catalog = _catalog(catalog_server, token="t")
    with pytest.raises(ServerError, match="^dataset user.bob.x belongs to user 'bob'$") as info:
        catalog.post("/api/v1/datasets/", {})
    assert info.value.status == 403
    with pytest.raises(NotFound, match="^no dataset named nope$"):
        catalog.get("/api/v1/datasets/nope/")


def test_missing_token_is_hinted_at_on_401(catalog_server):
    catalog_server.route("POST", "/api/v1/x/", (401, {"error": "Authentication credentials were not provided."}))
    with pytest.raises(ServerError, match=r"not provided. \(give a token with --token"):
        _catalog(catalog_server).post("/api/v1/x/")


def test_non_json_errors_still_give_one_line(catalog_server):
    catalog_server.route("GET", "/api/v1/x/", (418, b"<html>\n<b>teapot</b>\n</html>", "text/html"))
    with pytest.raises(ServerError, match="^HTTP 418 I'm a Teapot on GET /api/v1/x/$"):
        _catalog(catalog_server).get("/api/v1/x/")


def test_redirects_are_not_followed(catalog_server):
    catalog_server.route("GET", "/api/v1/x", (301, {}))
    with pytest.raises(ServerError, match="redirected GET /api/v1/x"):
        _catalog(catalog_server, token="t").get("/api/v1/x")
    assert len(catalog_server.log) == 1


def test_unreachable_server_is_retried_then_reported(tmp_path):
    catalog = Catalog("http://127.0.0.1:9", tries=2, sleep=lambda _: None)
    with pytest.raises(ConnectionProblem, match="^cannot reach http://127.0.0.1:9: connection refused$"):
        catalog.get("/api/v1/datasets/")


def test_pages_follow_next_on_our_own_server(catalog_server):
    # A `next` naming another host (a proxy's view) is re-rooted: the token never leaves our server.
    catalog_server.route("GET", "/api/v1/datasets/", (200, {"next": "http://elsewhere:1/api/v1/datasets/?cursor=abc",
                                                            "results": [{"name": "a"}]}),
                         (200, {"next": None, "results": [{"name": "b"}]}))  # fmt: skip
    names = [d["name"] for d in _catalog(catalog_server).pages("/api/v1/datasets/", {"name": "x*", "limit": 2})]
    assert names == ["a", "b"]
    assert catalog_server.log[0]["query"] == {"name": ["x*"], "limit": ["2"]}
    assert catalog_server.log[1]["query"] == {"cursor": ["abc"]}


def test_records_read_an_ndjson_stream(catalog_server):
    lines = b"".join(json.dumps({"lfn": f"f{i}"}).encode() + b"\n" for i in range(5))
    catalog_server.route("GET", "/api/v1/datasets/d/files/", (200, lines, "application/x-ndjson"))
    rows = list(_catalog(catalog_server).records("/api/v1/datasets/d/files/", {"version": 2}))
    assert [r["lfn"] for r in rows] == ["f0", "f1", "f2", "f3", "f4"]
    request = catalog_server.log[0]
    assert request["query"] == {"version": ["2"], "stream": ["1"]}
    assert request["headers"]["Accept"].startswith("application/x-ndjson")


def test_records_fall_back_to_pages_when_the_server_does_not_stream(catalog_server):
    catalog_server.route("GET", "/api/v1/datasets/d/files/",
                         (200, {"next": "/api/v1/datasets/d/files/?cursor=2", "results": [{"lfn": "a"}]}),
                         (200, {"next": None, "results": [{"lfn": "b"}]}))  # fmt: skip
    assert [r["lfn"] for r in _catalog(catalog_server).records("/api/v1/datasets/d/files/")] == ["a", "b"]

"""The dq2 command line against a scripted catalog and directory storage: arguments, output, exit codes."""

import hashlib
import os
import re
import uuid

import pytest

from client.checksums import adler32_of_bytes
from client.dq2 import main
from client.storage import deterministic_pfn, local_path

DS = "user.alice.test1"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    """No token or server from the developer's own environment; a token file that does not exist."""
    for name in ("PANDA_URL", "PANDA_TOKEN", "PANDA_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err):
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dq2: error: "), err
    return lines[0]


# -- arguments and configuration -------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["ls"],
        ["ls", "-f", "-r", DS],
        ["get", DS, "-n", "many"],
        ["get", DS, "-n", "0"],
        ["put", DS, "-s", "BNL"],
        ["ls", DS, "-f", "--version", "0"],
        ["--retries", "0", "ls", DS],
        ["--server", "ftp://x", "ls", DS],
    ],
)
def test_usage_errors_exit_2_with_one_line(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    one_error_line(err)


def test_help_lists_the_commands(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("ls", "get", "put", "register", "register-location", "close", "freeze", "erase"):
        assert re.search(rf"^    {command}\s", out, re.MULTILINE), command


def test_named_token_file_must_exist(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("PANDA_TOKEN_FILE", str(tmp_path / "nope"))
    code, _, err = run(capsys, "ls", DS)
    assert code == 2 and "does not exist" in one_error_line(err)


def test_a_token_with_a_line_break_is_refused_before_any_call(capsys, monkeypatch):
    monkeypatch.setenv("PANDA_TOKEN", "abc\ndef")
    code, _, err = run(capsys, "--server", "http://127.0.0.1:9", "ls", "x*")
    assert code == 2 and "must be one word" in one_error_line(err)


def test_unreachable_server_exits_1_with_one_line(capsys):
    code, out, err = run(capsys, "--server", "http://127.0.0.1:9", "--retries", "1", "ls", "x*")
    assert code == 1 and out == ""
    assert one_error_line(err) == "dq2: error: cannot reach http://127.0.0.1:9: connection refused"


@pytest.mark.parametrize(
    ("option", "env", "file", "sent"),
    [
        ("opt", "env", "file", "opt"),
        (None, "env", "file", "env"),
        (None, None, "file", "file"),
        (None, None, None, None),
    ],
)
def test_token_from_option_env_or_file(capsys, monkeypatch, tmp_path, catalog_server, option, env, file, sent):
    catalog_server.route("GET", "/api/v1/datasets/", (200, {"next": None, "results": []}))
    if env:
        monkeypatch.setenv("PANDA_TOKEN", env)
    if file:
        (tmp_path / "home" / ".panda").mkdir(parents=True)
        (tmp_path / "home" / ".panda" / "token").write_text(file + "\n")
    argv = ["ls", "x*", "--server", catalog_server.url] + (["--token", option] if option else [])
    assert run(capsys, *argv)[0] == 0
    assert catalog_server.log[0]["headers"].get("Authorization") == (f"Bearer {sent}" if sent else None)


# -- ls ------------------------------------------------------------------------------


@pytest.fixture
def dq2(capsys, monkeypatch, catalog_server):
    monkeypatch.setenv("PANDA_URL", catalog_server.url)
    monkeypatch.setenv("PANDA_TOKEN", "alice-token")
    return lambda *argv: run(capsys, *argv)


def test_ls_pattern_prints_names_across_pages(dq2, catalog_server):
    catalog_server.route("GET", "/api/v1/datasets/",
                         (200, {"next": "/api/v1/datasets/?cursor=1", "results": [{"name": "user.alice.a"}]}),
                         (200, {"next": None, "results": [{"name": "user.alice.b"}]}))  # fmt: skip
    assert dq2("ls", "user.alice.*") == (0, "user.alice.a\nuser.alice.b\n", "")
    assert catalog_server.log[0]["query"]["name"] == ["user.alice.*"]


def test_ls_files_streams_lines_and_a_total(dq2, catalog_server):
    rows = b'{"lfn":"a","guid":"g1","fsize":10,"adler32":"0000000a"}\n{"lfn":"b","guid":"g2","fsize":5,"adler32":"0000000b"}\n'
    catalog_server.route("GET", f"/api/v1/datasets/{DS}/files/", (200, rows, "application/x-ndjson"))
    code, out, _ = dq2("ls", "-f", DS, "--version", "2")
    assert code == 0
    assert out.splitlines() == [
        "a\tg1\t10\tad:0000000a",
        "b\tg2\t5\tad:0000000b",
        "total files: 2, total size: 15 bytes (15 B)",
    ]
    assert catalog_server.log[0]["query"] == {"version": ["2"], "stream": ["1"]}


def test_ls_replicas_shows_completeness(dq2, catalog_server):
    catalog_server.route("GET", f"/api/v1/datasets/{DS}/replicas/", (200, {"results": [
        {"site": "BNL", "files_present": 3, "n_files": 3, "complete": True},
        {"site": "CERN", "files_present": 1, "n_files": 3, "complete": False},
    ]}))  # fmt: skip
    assert dq2("ls", "-r", DS) == (0, "BNL\t3/3\tcomplete\nCERN\t1/3\tincomplete\n", "")


def test_unknown_dataset_is_the_servers_message(dq2, catalog_server):
    catalog_server.route("GET", f"/api/v1/datasets/{DS}/replicas/", (404, {"error": f"no dataset named {DS}"}))
    code, out, err = dq2("ls", "-r", DS)
    assert (code, out) == (1, "")
    assert one_error_line(err) == f"dq2: error: no dataset named {DS}"


# -- get -----------------------------------------------------------------------------


def _dataset_rows(catalog_server, files):
    rows = [{"lfn": lfn, "guid": str(uuid.uuid4()), "fsize": len(data), "adler32": adler32_of_bytes(data)}
            for lfn, data in sorted(files.items())]  # fmt: skip
    catalog_server.route("GET", f"/api/v1/datasets/{DS}/files/", (200, {"next": None, "results": rows}))


def _dataset_on_sites(catalog_server, tmp_path, files, sites):
    """Script a dataset of `files` ({lfn: bytes}) whose replicas are at `sites` ({site: {lfn: bytes or None}})."""
    _dataset_rows(catalog_server, files)
    replicas = {lfn: [] for lfn in files}
    for site, stored in sites.items():
        for lfn, data in stored.items():
            pfn = deterministic_pfn(str(tmp_path / "se" / site), lfn)
            if data is not None:
                local_path(pfn).parent.mkdir(parents=True, exist_ok=True)
                local_path(pfn).write_bytes(data)
            replicas[lfn].append({"site": site, "pfn": pfn, "state": "available"})

    def lookup(request):
        return {"replicas": {lfn: replicas.get(lfn, []) for lfn in request["body"]["lfns"]}}

    catalog_server.route("POST", "/api/v1/replicas/lookup/", (200, lookup))


def test_get_downloads_into_destdir_dataset_preferring_the_chosen_site(dq2, catalog_server, tmp_path):
    files = {"f1": os.urandom(1000), "f2": os.urandom(2000)}
    _dataset_on_sites(catalog_server, tmp_path, files, {"CERN": files, "BNL": files})
    code, out, err = dq2("get", DS, "-s", "BNL", "-d", str(tmp_path / "dl"))
    assert code == 0, err
    for lfn, data in files.items():
        assert (tmp_path / "dl" / DS / lfn).read_bytes() == data
    assert [line.split(" from ")[1].split()[0] for line in err.splitlines()] == ["BNL", "BNL"]
    assert out == f"2 downloaded, 0 already present, 0 failed, in {tmp_path / 'dl' / DS}\n"
    assert catalog_server.log[0]["query"]["limit"] == ["1000"]


def test_get_n_takes_only_the_first_files_and_skips_what_is_there(dq2, catalog_server, tmp_path):
    files = {"f1": b"one", "f2": b"two", "f3": b"three"}
    _dataset_on_sites(catalog_server, tmp_path, files, {"BNL": files})
    assert dq2("get", DS, "-n", "2", "-d", str(tmp_path))[0] == 0
    assert sorted(p.name for p in (tmp_path / DS).iterdir()) == ["f1", "f2"]
    code, out, _ = dq2("get", DS, "-d", str(tmp_path))
    assert code == 0 and out.startswith("1 downloaded, 2 already present, 0 failed")
    assert catalog_server.log[-1]["body"] == {"lfns": ["f1", "f2", "f3"]}


def test_get_names_the_files_it_could_not_fetch(dq2, catalog_server, tmp_path):
    files = {"good": b"good data", "bad": b"bad data!"}
    _dataset_on_sites(catalog_server, tmp_path, files, {"BNL": {"good": b"good data", "bad": b"corrupted"}})
    code, out, err = dq2("get", DS, "-d", str(tmp_path))
    assert code == 1
    assert "bad: FAILED: BNL: checksum mismatch" in err
    assert err.splitlines()[-1] == "dq2: error: 1 of 2 files could not be fetched: bad"
    assert (tmp_path / DS / "good").read_bytes() == b"good data" and not (tmp_path / DS / "bad").exists()


def test_get_refuses_a_file_name_that_would_leave_the_target_directory(dq2, catalog_server, tmp_path):
    rows = [{"lfn": "../escape", "fsize": 1, "adler32": "00620062"}]
    catalog_server.route("GET", f"/api/v1/datasets/{DS}/files/", (200, {"next": None, "results": rows}))
    catalog_server.route("POST", "/api/v1/replicas/lookup/", (200, {"replicas": {"../escape": [
        {"site": "X", "pfn": str(tmp_path / "x"), "state": "available"}]}}))  # fmt: skip
    (tmp_path / "x").write_bytes(b"a")
    code, _, err = dq2("get", DS, "-d", str(tmp_path / "dl"))
    assert code == 1 and "../escape: FAILED: not a safe file name" in err
    assert not (tmp_path / "escape").exists()


def test_put_then_get_through_http_storage(dq2, catalog_server, http_storage, tmp_path):
    """The site's endpoint is an HTTP server: put PUTs (then HEADs to verify), get GETs."""
    catalog_server.route("GET", "/api/v1/sites/WEB/", (200, {"name": "WEB", "storage_endpoint": http_storage.url}))
    catalog_server.route("GET", f"/api/v1/datasets/{DS}/", (404, {"error": "no dataset"}))
    catalog_server.route("POST", "/api/v1/datasets/", (201, {"datasets": [{"name": DS}]}))
    catalog_server.route("POST", "/api/v1/replicas/", (200, {"added": 1}))
    data = os.urandom(50_000)
    assert dq2("put", "-L", str(_local_dir(tmp_path, {"w.root": data})), DS, "-s", "WEB")[0] == 0
    pfn = deterministic_pfn(http_storage.url, "w.root")
    assert catalog_server.log[-1]["body"] == {"site": "WEB", "replicas": [{"lfn": "w.root", "pfn": pfn}]}
    assert [m for m, _, _ in http_storage.log] == ["HEAD", "PUT", "HEAD"]
    _dataset_rows(catalog_server, {"w.root": data})
    catalog_server.route("POST", "/api/v1/replicas/lookup/", (200, {"replicas": {"w.root": [
        {"site": "WEB", "pfn": pfn, "state": "available"}]}}))  # fmt: skip
    assert dq2("get", DS, "-d", str(tmp_path / "dl"))[0] == 0
    assert (tmp_path / "dl" / DS / "w.root").read_bytes() == data


# -- put -----------------------------------------------------------------------------


def _site_with_directory_storage(catalog_server, tmp_path):
    endpoint = str(tmp_path / "se" / "BNL")
    catalog_server.route("GET", "/api/v1/sites/BNL/", (200, {"name": "BNL", "storage_endpoint": endpoint}))
    catalog_server.route("POST", "/api/v1/replicas/", (200, lambda r: {"added": len(r["body"]["replicas"])}))
    return endpoint


def _local_dir(tmp_path, files):
    directory = tmp_path / "local"
    directory.mkdir()
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return directory


def test_put_creates_the_dataset_copies_and_registers_replicas(dq2, catalog_server, tmp_path):
    endpoint = _site_with_directory_storage(catalog_server, tmp_path)
    catalog_server.route("GET", f"/api/v1/datasets/{DS}/", (404, {"error": f"no dataset named {DS}"}))
    catalog_server.route("POST", "/api/v1/datasets/", (201, {"datasets": [{"name": DS, "latest_version": 1}]}))
    files = {"a.root": os.urandom(5000), "b.root": os.urandom(7000)}
    code, out, err = dq2("put", "-L", str(_local_dir(tmp_path, files)), DS, "-s", "BNL")
    assert code == 0, err
    assert out == f"registered {DS} with 2 files; 2 copied to BNL\n"
    created = next(e["body"] for e in catalog_server.log if e["path"] == "/api/v1/datasets/")
    [spec] = created["datasets"]
    assert spec["name"] == DS
    for sent, (lfn, data) in zip(spec["files"], sorted(files.items()), strict=True):
        assert (sent["lfn"], sent["fsize"], sent["adler32"]) == (lfn, len(data), adler32_of_bytes(data))
        assert sent["md5"] == hashlib.md5(data).hexdigest() and uuid.UUID(sent["guid"])
        assert local_path(deterministic_pfn(endpoint, lfn)).read_bytes() == data
    registered = next(e["body"] for e in catalog_server.log if e["path"] == "/api/v1/replicas/")
    assert registered == {"site": "BNL", "replicas": [
        {"lfn": lfn, "pfn": deterministic_pfn(endpoint, lfn)} for lfn in sorted(files)]}  # fmt: skip


def test_put_to_an_existing_dataset_registers_a_version_with_only_the_new_files(dq2, catalog_server, tmp_path):
    endpoint = _site_with_directory_storage(catalog_server, tmp_path)
    old = os.urandom(100)
    catalog_server.route("GET", f"/api/v1/datasets/{DS}/", (200, {"name": DS, "latest_version": 1}))
    catalog_server.route(
        "GET",
        f"/api/v1/datasets/{DS}/files/",
        (
            200,
            (f'{{"lfn":"old.root","fsize":100,"adler32":"{adler32_of_bytes(old)}"}}\n').encode(),
            "application/x-ndjson",
        ),
    )
    catalog_server.route("POST", "/api/v1/replicas/lookup/", (200, {"replicas": {"old.root": [{"site": "BNL"}]}}))
    catalog_server.route("POST", f"/api/v1/datasets/{DS}/versions/", (201, {"name": DS, "latest_version": 2}))
    directory = _local_dir(tmp_path, {"old.root": old, "new.root": b"new"})
    code, out, err = dq2("put", "-L", str(directory), DS, "-s", "BNL")
    assert code == 0, err
    assert out == f"registered version 2 of {DS} with 1 new; 1 copied to BNL, 1 already there\n"
    version = next(e["body"] for e in catalog_server.log if e["path"].endswith("/versions/"))
    assert [f["lfn"] for f in version["files"]] == ["new.root"]
    assert not local_path(deterministic_pfn(endpoint, "old.root")).exists()  # stored already: not copied again


def test_put_refuses_a_local_file_that_differs_from_the_one_in_the_dataset(dq2, catalog_server, tmp_path):
    _site_with_directory_storage(catalog_server, tmp_path)
    catalog_server.route("GET", f"/api/v1/datasets/{DS}/", (200, {"name": DS}))
    catalog_server.route("GET", f"/api/v1/datasets/{DS}/files/", (200, b'{"lfn":"a","fsize":1,"adler32":"00620062"}\n',
                                                                  "application/x-ndjson"))  # fmt: skip
    code, _, err = dq2("put", "-L", str(_local_dir(tmp_path, {"a": b"other"})), DS, "-s", "BNL")
    assert code == 1 and "a is already in" in one_error_line(err)
    assert not any(e["method"] == "POST" for e in catalog_server.log)


def test_put_refuses_file_names_that_cannot_be_lfns(dq2, tmp_path):
    code, _, err = dq2("put", "-L", str(_local_dir(tmp_path, {"bad name.root": b"x"})), DS, "-s", "BNL")
    assert code == 2 and "cannot be an LFN" in one_error_line(err)


def test_put_of_a_missing_directory(dq2, tmp_path):
    code, _, err = dq2("put", "-L", str(tmp_path / "nope"), DS, "-s", "BNL")
    assert code == 2 and "is not a directory" in one_error_line(err)


def test_register_reads_files_from_json(dq2, catalog_server, tmp_path):
    catalog_server.route("POST", "/api/v1/datasets/", (201, {"datasets": [{"name": DS, "n_files": 1}]}))
    (tmp_path / "files.json").write_text('[{"lfn": "a", "fsize": 1, "adler32": "ad:00620062"}]')
    assert dq2("register", DS, "-f", str(tmp_path / "files.json")) == (0, f"registered dataset {DS} with 1 file\n", "")
    assert catalog_server.log[0]["body"]["datasets"][0]["files"] == [{"lfn": "a", "fsize": 1, "adler32": "ad:00620062"}]
    (tmp_path / "bad.json").write_text("{not json")
    code, _, err = dq2("register", DS, "-f", str(tmp_path / "bad.json"))
    assert code == 2 and "is not JSON" in one_error_line(err)

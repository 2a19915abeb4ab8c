"""dq2's data-flow commands (subscribe, subscriptions, unsubscribe, suspend/resume, transfers, callbacks)
against a scripted catalog: what they send, what they print, how they fail."""

import re

import pytest

from client.dq2 import main

DS = "user.alice.test1"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for name in ("PANDA_URL", "PANDA_TOKEN", "PANDA_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture
def dq2(capsys, monkeypatch, catalog_server):
    monkeypatch.setenv("PANDA_URL", catalog_server.url)
    monkeypatch.setenv("PANDA_TOKEN", "alice-token")

    def run(*argv):
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def one_error_line(err):
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dq2: error: "), err
    return lines[0]


def subscription(pk, **fields):
    made = {"id": pk, "dataset": DS, "dataset_kind": "dataset", "site": "MWT2", "owner_name": "alice",
            "activity": "user", "priority": 3, "state": "active", "reason": "",
            "progress": {"files_wanted": 3, "files_present": 1, "bytes_wanted": 300, "bytes_present": 100}}  # fmt: skip
    return {**made, **fields}


@pytest.mark.parametrize(
    "argv",
    [
        ["subscribe", DS],
        ["subscribe", DS, "MWT2", "--priority", "9"],
        ["subscribe", DS, "MWT2", "--priority", "high"],
        ["subscribe", DS, "MWT2", "--activity", "dispatch"],
        ["unsubscribe"],
        ["unsubscribe", "twelve"],
        ["suspend-subscription", "0"],
        ["resume-subscription", "-3"],
        ["subscriptions", "-n", "0"],
        ["transfers", "--colour", "red"],
        ["callback", DS, "MWT2"],
    ],
)
def test_usage_errors_exit_2_before_any_call(dq2, catalog_server, argv):
    code, out, err = dq2(*argv)
    assert code == 2 and out == ""
    one_error_line(err)
    assert catalog_server.log == []


def test_help_lists_the_data_flow_commands(dq2):
    code, out, _ = dq2("--help")
    assert code == 0
    for command in ("subscribe", "subscriptions", "unsubscribe", "suspend-subscription", "resume-subscription",
                    "transfers", "callback", "callbacks"):  # fmt: skip
        assert re.search(rf"^    {command}(\s|$)", out, re.MULTILINE), command


# -- subscribe, unsubscribe, suspend, resume -------------------------------------------------------------


def test_subscribe_posts_the_subscription_and_says_what_was_made(dq2, catalog_server):
    catalog_server.route("POST", "/api/v1/subscriptions/", (201, subscription(12, priority=4)))
    assert dq2("subscribe", DS, "MWT2", "--priority", "4") == (
        0, f"subscription 12: MWT2 subscribed to {DS} (priority 4, active)\n", ""
    )  # fmt: skip
    [call] = catalog_server.log
    assert call["body"] == {"dataset": DS, "site": "MWT2", "priority": 4, "activity": "user"}
    assert call["headers"]["Authorization"] == "Bearer alice-token"


@pytest.mark.parametrize(
    "status, message",
    [
        (403, "dataset user.alice.test1 belongs to user 'alice'; only they or a data operator may write it"),
        (404, "unknown site 'MWT2'"),
        (409, "MWT2 is already subscribed to user.alice.test1"),
        (400, "site NOSE has no storage endpoint to receive files"),
    ],
)
def test_a_refused_subscription_is_the_servers_message(dq2, catalog_server, status, message):
    catalog_server.route("POST", "/api/v1/subscriptions/", (status, {"error": message}))
    code, out, err = dq2("subscribe", DS, "MWT2")
    assert (code, out) == (1, "")
    assert one_error_line(err) == f"dq2: error: {message}"
    assert len(catalog_server.log) == 1  # a write is not retried


def test_unsubscribe_deletes_and_a_204_is_success(dq2, catalog_server):
    catalog_server.route("DELETE", "/api/v1/subscriptions/12/", (204, b""))
    assert dq2("unsubscribe", "12") == (
        0, "subscription 12 deleted (its queued transfers are dropped; replicas stay)\n", ""
    )  # fmt: skip
    assert catalog_server.log[0]["method"] == "DELETE"


def test_unsubscribing_a_missing_subscription(dq2, catalog_server):
    catalog_server.route("DELETE", "/api/v1/subscriptions/99/", (404, {"error": "no subscription 99"}))
    code, _, err = dq2("unsubscribe", "99")
    assert code == 1 and one_error_line(err) == "dq2: error: no subscription 99"


def test_suspend_sends_the_reason_and_resume_says_it_is_active(dq2, catalog_server):
    suspended = subscription(12, state="suspended", reason="suspended by alice: disk full")
    catalog_server.route("POST", "/api/v1/subscriptions/12/suspend/", (200, suspended))
    catalog_server.route("POST", "/api/v1/subscriptions/12/resume/", (200, subscription(12)))
    assert dq2("suspend-subscription", "12", "--reason", "disk full") == (
        0, f"subscription 12 ({DS} at MWT2) is suspended\n", ""
    )  # fmt: skip
    assert catalog_server.log[0]["body"] == {"reason": "disk full"}
    assert dq2("resume-subscription", "12") == (0, f"subscription 12 ({DS} at MWT2) is active again\n", "")


def test_suspending_someone_elses_subscription_is_refused(dq2, catalog_server):
    message = "subscription 12 belongs to bob; only they or a data operator may change it"
    catalog_server.route("POST", "/api/v1/subscriptions/12/suspend/", (403, {"error": message}))
    code, out, err = dq2("suspend-subscription", "12")
    assert (code, out) == (1, "")
    assert one_error_line(err) == f"dq2: error: {message}"


# -- listings -----------------------------------------------------------------------------------------------


def test_subscriptions_prints_a_table_and_passes_the_filters(dq2, catalog_server):
    rows = [subscription(13, site="CERN", state="stuck", reason="1 file(s) failed every transfer attempt"),
            subscription(12, dataset="mc11.all.EVNT", dataset_kind="container", progress=None, priority=5,
                         activity="production", owner_name="ddmop")]  # fmt: skip
    catalog_server.route("GET", "/api/v1/subscriptions/", (200, {"next": None, "results": rows}))
    code, out, err = dq2("subscriptions", "--dataset", "user.alice.*", "--site", "CERN|MWT2", "--state", "!done")
    assert code == 0, err
    assert out.splitlines() == [
        "ID  STATE   SITE  FILES  PRIO  ACTIVITY    OWNER  DATASET           REASON",
        "13  stuck   CERN  1/3    3     user        alice  user.alice.test1  1 file(s) failed every transfer attempt",
        "12  active  MWT2  -      5     production  ddmop  mc11.all.EVNT",
    ]
    query = catalog_server.log[0]["query"]
    assert (query["dataset"], query["site"], query["state"]) == (["user.alice.*"], ["CERN|MWT2"], ["!done"])
    assert "owner" not in query


def test_a_table_aligns_its_columns(dq2, catalog_server):
    rows = [subscription(7, site="CERN-PROD"), subscription(1234, site="BNL")]
    catalog_server.route("GET", "/api/v1/subscriptions/", (200, {"next": None, "results": rows}))
    header, first, second = dq2("subscriptions")[1].splitlines()
    column = header.index("SITE")
    assert first[column:].startswith("CERN-PROD  1/3") and second[column:].startswith("BNL        1/3")
    assert first.startswith("7     active") and second.startswith("1234  active")


def test_an_empty_listing_says_so(dq2, catalog_server):
    catalog_server.route("GET", "/api/v1/subscriptions/", (200, {"next": None, "results": []}))
    catalog_server.route("GET", "/api/v1/transfers/", (200, {"next": None, "results": []}))
    assert dq2("subscriptions", "--site", "NOWHERE") == (0, "no subscriptions\n", "")
    assert dq2("transfers") == (0, "no transfers\n", "")


def test_n_limits_the_rows_and_says_there_are_more(dq2, catalog_server):
    catalog_server.route("GET", "/api/v1/subscriptions/",
                         (200, {"next": "/api/v1/subscriptions/?cursor=a", "results": [subscription(9), subscription(8)]}),
                         (200, {"next": None, "results": [subscription(7), subscription(6)]}))  # fmt: skip
    code, out, _ = dq2("subscriptions", "-n", "3")
    lines = out.splitlines()
    assert code == 0 and [line.split()[0] for line in lines[1:4]] == ["9", "8", "7"]
    assert lines[4] == "(the newest 3 subscriptions are shown; -n N shows more)"
    assert catalog_server.log[0]["query"]["limit"] == ["4"]


def test_a_bad_filter_is_the_servers_message(dq2, catalog_server):
    message = "invalid input: state: 'sleeping' is not one of: active, done, stuck, suspended"
    catalog_server.route("GET", "/api/v1/subscriptions/", (400, {"error": message}))
    code, out, err = dq2("subscriptions", "--state", "sleeping")
    assert (code, out) == (1, "")
    assert one_error_line(err) == f"dq2: error: {message}"


def test_transfers_prints_sizes_sources_and_errors(dq2, catalog_server):
    rows = [
        {"id": 5, "lfn": "a.root", "fsize": 2_500_000, "source": "BNL", "destination": "MWT2", "state": "failed",
         "attempts": 4, "error": "checksum mismatch"},
        {"id": 4, "lfn": "b.root", "fsize": 10, "source": None, "destination": "MWT2", "state": "queued",
         "attempts": 0, "error": ""},
    ]  # fmt: skip
    catalog_server.route("GET", "/api/v1/transfers/", (200, {"next": None, "results": rows}))
    code, out, err = dq2("transfers", "--destination", "MWT2", "--state", "queued|failed")
    assert code == 0, err
    header, first, second = out.splitlines()
    assert header.split() == ["ID", "STATE", "TRIES", "SIZE", "SOURCE", "DESTINATION", "LFN", "ERROR"]
    assert first == "5   failed  4      2.5 MB  BNL     MWT2         a.root  checksum mismatch"
    assert second == "4   queued  0      10 B    -       MWT2         b.root"
    query = catalog_server.log[0]["query"]
    assert (query["destination"], query["state"], query["limit"]) == (["MWT2"], ["queued|failed"], ["101"])


# -- callbacks ----------------------------------------------------------------------------------------------


def test_callback_registers_and_callbacks_lists(dq2, catalog_server):
    made = {"id": 3, "dataset": DS, "site": "MWT2", "kind": "http", "url": "https://example.org/h",
            "state": "waiting", "last_error": ""}  # fmt: skip
    catalog_server.route("POST", "/api/v1/callbacks/", (201, made))
    catalog_server.route("GET", "/api/v1/callbacks/", (200, {"next": None, "results": [made]}))
    assert dq2("callback", DS, "MWT2", "https://example.org/h") == (
        0, f"callback 3 (waiting): POST to https://example.org/h once MWT2 holds every file of {DS}\n", ""
    )  # fmt: skip
    assert catalog_server.log[0]["body"] == {"dataset": DS, "site": "MWT2", "url": "https://example.org/h"}
    code, out, _ = dq2("callbacks", "--state", "waiting")
    assert code == 0 and out.splitlines()[1].split() == ["3", "waiting", "MWT2", DS, "https://example.org/h"]


def test_a_bad_callback_url_is_the_servers_message(dq2, catalog_server):
    message = "url: give an http:// or https:// URL of at most 500 characters"
    catalog_server.route("POST", "/api/v1/callbacks/", (400, {"error": message}))
    code, _, err = dq2("callback", DS, "MWT2", "ftp://x")
    assert code == 1 and one_error_line(err) == f"dq2: error: {message}"


def test_writes_without_a_token_say_how_to_give_one(dq2, catalog_server, monkeypatch):
    monkeypatch.delenv("PANDA_TOKEN")
    catalog_server.route(
        "POST", "/api/v1/subscriptions/", (401, {"error": "Authentication credentials were not provided."})
    )
    code, _, err = dq2("subscribe", DS, "MWT2")
    assert code == 1 and "give a token with --token" in one_error_line(err)

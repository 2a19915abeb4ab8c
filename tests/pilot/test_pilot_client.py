"""The HTTP side: encoding, auth header, retries and the fatal answers."""

import threading
import time

import pytest

from pilot.client import (
    BadRequest,
    CredentialRefused,
    PandaClient,
    ProtocolError,
    RequestAborted,
    ServerUnreachable,
    backoff_delay,
)


def recording_client(url, **kwargs):
    delays = []
    client = PandaClient(url, sleep=delays.append, **kwargs)
    return client, delays


def test_form_encoding_headers_and_bearer_token(stub_server):
    stub_server.routes["/server/panda/getJob"] = lambda r: (200, {"StatusCode": 20})
    client = PandaClient(stub_server.url + "/", credential="s3cret")

    answer = client.get_job({"siteName": "SITE_A", "workingGroup": "", "mem": 2048})

    assert answer["StatusCode"] == 20
    (request,) = stub_server.requests
    assert request.method == "POST"
    assert request.path == "/server/panda/getJob"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Authorization"] == "Bearer s3cret"
    assert request.form == {"siteName": "SITE_A", "workingGroup": "", "mem": "2048"}


def test_no_authorization_header_without_credential(stub_server):
    stub_server.routes["/server/panda/getJob"] = lambda r: (200, {"StatusCode": 20})
    PandaClient(stub_server.url).get_job({"siteName": "S"})
    assert "Authorization" not in stub_server.requests[0].headers


def test_gives_up_after_configured_tries_against_closed_port(free_port):
    client, delays = recording_client(f"http://127.0.0.1:{free_port}", max_tries=3, base_delay=1.0, max_delay=60.0)
    started = time.monotonic()

    with pytest.raises(ServerUnreachable, match="gave up after 3 tries"):
        client.get_job({"siteName": "S"})

    assert len(delays) == 2  # a pause between tries, none after the last
    assert 0.8 <= delays[0] <= 1.0 and 1.6 <= delays[1] <= 2.0
    assert time.monotonic() - started < 2


def test_backoff_doubles_and_is_capped():
    for attempt in range(1, 10):
        capped = min(60.0, 2.0 ** (attempt - 1))  # 1, 2, 4 ... 32, 60, 60
        delay = backoff_delay(attempt, 1.0, 60.0)
        # the jitter only shortens a delay, so the cap holds
        assert 0.8 * capped <= delay <= capped


def test_403_is_fatal_and_not_retried(stub_server):
    stub_server.routes["/server/panda/getJob"] = lambda r: (403, {"StatusCode": 70, "errorDialog": "token revoked"})
    client, delays = recording_client(stub_server.url, max_tries=5)

    with pytest.raises(CredentialRefused, match="token revoked"):
        client.get_job({"siteName": "S"})

    assert len(stub_server.requests) == 1
    assert delays == []


def test_status_code_70_in_a_200_answer_is_also_fatal(stub_server):
    stub_server.routes["/server/panda/getJob"] = lambda r: (200, {"StatusCode": 70, "errorDialog": "not a pilot"})
    with pytest.raises(CredentialRefused, match="not a pilot"):
        PandaClient(stub_server.url).get_job({"siteName": "S"})


def test_400_is_not_retried(stub_server):
    stub_server.routes["/server/panda/updateJob"] = lambda r: (400, {"StatusCode": 50, "errorDialog": "jobId missing"})
    client, delays = recording_client(stub_server.url, max_tries=5)

    with pytest.raises(BadRequest, match="jobId missing"):
        client.update_job({"state": "running"})

    assert len(stub_server.requests) == 1


def test_5xx_is_retried_until_success(stub_server):
    answers = iter([(503, b"busy"), (500, {"StatusCode": 30}), (200, {"StatusCode": 0, "command": "NULL"})])
    stub_server.routes["/server/panda/updateJob"] = lambda r: next(answers)
    client, delays = recording_client(stub_server.url, max_tries=5)

    assert client.update_job({"jobId": 1})["command"] == "NULL"
    assert len(stub_server.requests) == 3
    assert len(delays) == 2


def test_insisting_update_retries_non_zero_status_codes(stub_server):
    answers = iter([(200, {"StatusCode": 10}), (200, {"StatusCode": 0, "command": "NULL"})])
    stub_server.routes["/server/panda/updateJob"] = lambda r: next(answers)
    client, _ = recording_client(stub_server.url, max_tries=3)

    assert client.update_job({"jobId": 1}, insist=True)["StatusCode"] == 0
    assert len(stub_server.requests) == 2


def test_non_json_answer_is_a_protocol_error(stub_server):
    stub_server.routes["/server/panda/getJob"] = lambda r: (200, b"StatusCode=0&PandaID=1")
    with pytest.raises(ProtocolError):
        PandaClient(stub_server.url).get_job({"siteName": "S"})


def test_redirects_are_not_followed(stub_server):
    stub_server.routes["/server/panda/getJob"] = lambda r: (302, b"")
    with pytest.raises(ProtocolError, match="302"):
        PandaClient(stub_server.url, credential="t").get_job({"siteName": "S"})
    assert len(stub_server.requests) == 1


def test_abort_event_stops_the_backoff_wait(free_port):
    client = PandaClient(f"http://127.0.0.1:{free_port}", max_tries=5, base_delay=30)
    abort = threading.Event()
    threading.Timer(0.2, abort.set).start()
    started = time.monotonic()

    with pytest.raises(RequestAborted):
        client.update_job({"jobId": 1}, abort=abort)

    assert time.monotonic() - started < 3


def test_get_status_splits_plus_joined_answer(stub_server):
    stub_server.routes["/server/panda/getStatus"] = lambda r: (
        200,
        {"StatusCode": 0, "status": "running+finished", "attemptNr": "1+2"},
    )
    client = PandaClient(stub_server.url)

    assert client.get_status([7, 8]) == {7: ("running", "1"), 8: ("finished", "2")}
    assert stub_server.requests[0].form == {"ids": "7,8"}

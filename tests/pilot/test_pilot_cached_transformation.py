"""Transformations from the script cache: the credential goes to the pilot's own server only; tarballs
are unpacked in the work directory and the script they name is run."""

import io
import os
import tarfile

import pytest

from pilot import errors
from pilot.errors import PilotFailure
from pilot.payload import KillSwitch, start_payload
from pilot.transformation import build_command, same_origin

SHA = "ab" * 32
RUN = b'#!/bin/sh\necho "args: $*"\ncat lib/data.txt\n'


def run_command(command, workdir):
    payload = start_payload(command, str(workdir), dict(os.environ))
    result = payload.wait(KillSwitch(), grace=1.0, poll_interval=0.05)
    return result.exit_code, (workdir / "payload.stdout").read_text()


def tarball(files, mode=0o644):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def serve(stub_server, body, token="pilot-token"):
    def answer(request):
        if request.headers.get("Authorization") != f"Bearer {token}":
            return 401, {"error": "the script cache serves user code to its uploaders and to pilots only"}
        return 200, body

    stub_server.routes[f"/cache/{SHA}"] = answer
    return f"{stub_server.url}/cache/{SHA}"


def test_the_credential_goes_to_the_pilots_own_server_only(tmp_path, stub_server):
    url = serve(stub_server, b"#!/bin/sh\necho cached $1\n")
    command = build_command(url, "x", str(tmp_path), server=stub_server.url + "/", credential="pilot-token")
    assert command == [str(tmp_path / "runme"), "x"]
    assert run_command(command, tmp_path) == (0, "cached x\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(PilotFailure) as failure:
        build_command(url, "x", str(elsewhere), server="http://127.0.0.1:9", credential="pilot-token")
    assert failure.value.code == errors.TRFDOWNLOADFAILURE and "401" in failure.value.diag
    assert "Authorization" not in stub_server.requests[-1].headers
    assert len(stub_server.requests) == 2  # a refusal is not retried


def test_a_tarball_is_unpacked_and_the_fragment_script_run(tmp_path, stub_server):
    url = serve(stub_server, tarball({"run.sh": RUN, "lib/data.txt": b"from the work dir\n"}))
    command = build_command(url + "#run.sh", "a 'b c'", str(tmp_path), server=stub_server.url,
                            credential="pilot-token")  # fmt: skip
    assert command == [str(tmp_path / "run.sh"), "a", "b c"]
    assert os.access(tmp_path / "run.sh", os.X_OK)  # made executable although archived 0644
    assert run_command(command, tmp_path) == (0, "args: a b c\nfrom the work dir\n")
    assert sorted(os.listdir(tmp_path)) == ["lib", "payload.stderr", "payload.stdout", "run.sh"]


def test_without_a_fragment_jobpars_is_the_command(tmp_path, stub_server):
    url = serve(stub_server, tarball({"run.sh": RUN, "lib/data.txt": b"data\n"}))
    first = tmp_path / "first"
    first.mkdir()
    command = build_command(url, "run.sh one", str(first), server=stub_server.url, credential="pilot-token")
    assert command == [str(first / "run.sh"), "one"]
    assert run_command(command, first) == (0, "args: one\ndata\n")
    # A first word that is not in the archive is a program on the worker, run in the unpacked directory.
    second = tmp_path / "second"
    second.mkdir()
    command = build_command(url, "sh run.sh two", str(second), server=stub_server.url, credential="pilot-token")
    assert command == ["sh", "run.sh", "two"]
    assert run_command(command, second) == (0, "args: two\ndata\n")


@pytest.mark.parametrize(
    ("fragment", "job_pars", "needle"),
    [("#nothere.sh", "", "is not in the archive"), ("#../run.sh", "", "not a relative path"),
     ("", "", "names no script")],
)  # fmt: skip
def test_an_archive_must_name_a_script_inside_it(tmp_path, stub_server, fragment, job_pars, needle):
    url = serve(stub_server, tarball({"run.sh": RUN}))
    with pytest.raises(PilotFailure) as failure:
        build_command(url + fragment, job_pars, str(tmp_path), server=stub_server.url, credential="pilot-token")
    assert failure.value.code == errors.TRANSFORMNOTFOUND and needle in failure.value.diag


def test_an_archive_cannot_write_outside_the_work_directory(tmp_path, stub_server):
    workdir = tmp_path / "wd"
    workdir.mkdir()
    url = serve(stub_server, tarball({"../evil.sh": RUN}))
    with pytest.raises(PilotFailure) as failure:
        build_command(url + "#evil.sh", "", str(workdir), server=stub_server.url, credential="pilot-token")
    assert failure.value.code == errors.TRFDOWNLOADFAILURE and "cannot unpack" in failure.value.diag
    assert not (tmp_path / "evil.sh").exists() and os.listdir(workdir) == []


def test_same_origin():
    assert same_origin("http://panda:8000/cache/x", "http://panda:8000")
    assert same_origin("https://panda/cache/x", "https://panda:443/")
    assert not same_origin("http://panda:8001/cache/x", "http://panda:8000")
    assert not same_origin("https://panda:8000/cache/x", "http://panda:8000")
    assert not same_origin("http://evil.example/cache/x", "http://panda:8000")
    assert not same_origin("http://panda:8000/cache/x", None)

"""Signed job records, live (docs/job-signing.md): a real pilot behind a tampering proxy refuses the
job whose description was changed between server and pilot, and runs the untouched one."""

import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rest_framework.authtoken.models import Token

from jobs import signing
from jobs.choices import JobStatus
from jobs.models import Job, JobSignature
from sites.services import create_pilot_credential

from ..factories import SiteFactory, UserFactory
from .conftest import ROOT
from .test_end_to_end import WRITE_OUTPUT, _final, submit, wait_for

pytestmark = pytest.mark.live
FORWARDED_HEADERS = ("Authorization", "Content-Type", "Accept", "User-Agent")
# The payload leaves a mark named after its argument: proof of what ran.
MARK = '#!/bin/sh\ntouch "$MARK_DIR/ran-$1"\n'


class TamperingProxy:
    """Forwards everything to the server; in getJob answers for jobs named `tamper.*` it rewrites jobPars."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.tampered = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self._forward(None)

            def do_POST(self):
                self._forward(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def _forward(self, body):
                status, content_type, data = proxy.forward(self.command, self.path, self.headers, body)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler

    def forward(self, method, path, headers, body):
        wanted = {name: headers[name] for name in FORWARDED_HEADERS if headers.get(name)}
        request = urllib.request.Request(self.upstream + path, data=body, headers=wanted, method=method)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, content_type, data = response.status, response.headers["Content-Type"], response.read()
        except urllib.error.HTTPError as error:
            status, content_type, data = error.code, error.headers["Content-Type"] or "text/plain", error.read()
        if path.startswith("/server/panda/getJob") and status == 200:
            data = self.tamper(data)
        return status, content_type or "application/octet-stream", data

    def tamper(self, data):
        answer = json.loads(data)
        if str(answer.get("jobName", "")).startswith("tamper."):
            answer["jobPars"] = "tampered"
            self.tampered.append(answer["PandaID"])
        return json.dumps(answer).encode()

    def close(self):
        self._httpd.shutdown()
        self._httpd.server_close()


def test_pilot_refuses_a_job_tampered_with_in_transit(signing_key, live_server_url, celery_worker, tmp_path):
    site = SiteFactory(name="SIGNED")
    _, pilot_token = create_pilot_credential(name="signed", sites=[site])
    (tmp_path / "pilot.token").write_text(pilot_token)
    # What the site installs: the server's public key, never fetched over the jobs' channel.
    public_key_file = tmp_path / "server-public.pem"
    public_key_file.write_text(signing.public_pem(signing.read_key_file(signing_key).public_key()))
    user_token = Token.objects.create(user=UserFactory(username="erin")).key
    ok, tampered = submit(live_server_url, user_token, [
        {"job_name": "ok.1", "transformation": WRITE_OUTPUT, "job_parameters": "ok.root",
         "output_files": [{"lfn": "ok.root", "dataset": "user.erin.signed"}]},
        {"job_name": "tamper.1", "transformation": MARK, "job_parameters": "original"},
    ])  # fmt: skip
    assert JobSignature.objects.filter(job_id__in=[ok, tampered]).count() == 2  # signed at submission
    wait_for(lambda: Job.objects.filter(status=JobStatus.ACTIVATED).count() == 2, what="brokerage by the worker")
    proxy = TamperingProxy(live_server_url)
    try:
        done = run_pilot(proxy.url, tmp_path, public_key_file)
    finally:
        proxy.close()
    log = (tmp_path / "pilot.log").read_text()
    assert done == 0, log[-3000:]
    assert proxy.tampered == [tampered]
    final = {
        pid: wait_for(lambda p=pid: _final(live_server_url, p), what=f"job {pid} to end") for pid in (ok, tampered)
    }
    assert final == {ok: "finished", tampered: "failed"}, log[-3000:]
    refused = Job.objects.get(pandaid=tampered)
    assert refused.pilot_error_code == 1390, refused.pilot_error_diag
    assert "does not match the job description" in refused.pilot_error_diag
    assert not list((tmp_path / "marks").iterdir())  # neither the original nor the tampered payload ran


def run_pilot(server, tmp_path, public_key_file):
    (tmp_path / "se").mkdir()
    (tmp_path / "marks").mkdir()
    argv = [sys.executable, "-m", "pilot", "--server", server, "--site", "SIGNED",
            "--credential-file", str(tmp_path / "pilot.token"), "--signing-key", str(public_key_file),
            "--max-jobs", "2", "--heartbeat", "1", "--idle-sleep", "1", "--storage-dir", str(tmp_path / "se"),
            "--workdir", str(tmp_path / "wd")]  # fmt: skip
    env = {"PATH": "/usr/bin:/bin", "MARK_DIR": str(tmp_path / "marks")}
    with open(tmp_path / "pilot.log", "wb") as log:
        return subprocess.run(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=180).returncode

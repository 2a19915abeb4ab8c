"""The one-command demo: web server, Celery worker + beat, pilots and a stream of demo jobs.

Everything runs as real processes on this host against the embedded default
(SQLite + filesystem broker), so the demo exercises the same code paths as a
production deployment.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from django.conf import settings

PAYLOAD = """#!/bin/bash
# Demo payload: simulate some work, write the output file, sometimes fail like real jobs do.
set -e
out="$1"; seconds="$2"; fail="$3"
echo "processing on $(hostname) for ${seconds}s"
for i in $(seq 1 "$seconds"); do echo "event $i"; sleep 1; done
if [ "$fail" = "1" ]; then echo "segmentation violation in AthenaSim" >&2; exit 65; fi
head -c 20000 /dev/urandom > "$out"
echo "wrote $out"
"""


def demo_jobs(sites, count, rng):
    """A batch of analysis-like jobs: most pinned to sites with pilots, a few left to the brokerage."""
    jobs = []
    for _ in range(count):
        serial = rng.randrange(10**6)
        name = f"user.alice.demo.{serial:06d}"
        job = {
            "job_name": name,
            "transformation": PAYLOAD,
            "job_parameters": f"{name}.root {rng.randint(3, 25)} {1 if rng.random() < 0.15 else 0}",
            "output_files": [{"lfn": f"{name}.root", "dataset": "user.alice.demo"}],
            "min_ram_count": rng.choice([500, 1000, 2000]),
        }
        if rng.random() < 0.85:
            job["computing_site"] = rng.choice(sites)
        jobs.append(job)
    return jobs


def submit(base_url, token, jobs):
    request = urllib.request.Request(
        f"{base_url}/api/v1/jobs/",
        data=json.dumps(jobs).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["pandaids"]


def wait_until_up(url, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except OSError:
            time.sleep(0.5)
    return False


class ProcessGroup:
    """Child processes started together and stopped together (also on Ctrl-C)."""

    def __init__(self, log_dir):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.children = []

    def start(self, name, argv, env=None):
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the child's lifetime
        child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=settings.BASE_DIR)
        self.children.append((name, child))
        return child

    def dead(self):
        return [name for name, child in self.children if child.poll() is not None]

    def stop(self):
        for _, child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _, child in self.children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()


def python():
    return sys.executable


def child_env(**extra):
    env = dict(os.environ)
    env.update({key: str(value) for key, value in extra.items()})
    return env


def random_source(seed=None):
    return random.Random(seed)

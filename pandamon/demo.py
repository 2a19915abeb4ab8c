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
import zlib
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


DEMO_INPUT = "mc08.105200.T1_McAtNlo_Jimmy.evgen.EVNT.e357"
DEMO_INPUT_SITE = "BNL"


def seed_input_dataset(user, n_files=20):
    """A small event-generation dataset at BNL with real files, read by some demo jobs.

    Jobs brokered elsewhere need its files moved: the demo shows dispatch blocks,
    transfers and jobs going assigned -> activated. Returns the files' LFNs.
    """
    from datasets.models import Dataset
    from datasets.services import catalog, replicas
    from datasets.services.replicas import deterministic_pfn
    from sites.models import Site

    site = Site.objects.get(name=DEMO_INPUT_SITE)
    files = {f"EVNT.demo._{n:05d}.pool.root": f"demo event record {n}\n".encode() * 200 for n in range(1, n_files + 1)}
    for lfn, data in files.items():
        path = Path(deterministic_pfn(site, lfn))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    if not Dataset.objects.filter(name=DEMO_INPUT).exists():
        specs = [
            {"lfn": lfn, "fsize": len(data), "adler32": f"{zlib.adler32(data):08x}"} for lfn, data in files.items()
        ]
        catalog.register_new_dataset(user=user, name=DEMO_INPUT, files=specs)
        replicas.register_dataset_location(user=user, name=DEMO_INPUT, site_name=site.name, complete=True)
    return list(files)


def demo_jobs(sites, count, rng, input_lfns=()):
    """A batch of analysis-like jobs: most pinned to sites with pilots, a few left to the brokerage;
    about half read one or two files of the demo input dataset."""
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
        if input_lfns and rng.random() < 0.5:
            job["input_files"] = [{"lfn": lfn, "dataset": DEMO_INPUT} for lfn in rng.sample(input_lfns, 2)]
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

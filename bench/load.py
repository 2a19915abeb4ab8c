"""Concurrent pilots over real HTTP: processes of threads, each thread a keep-alive requests.Session.

Several processes, because `requests` costs about a millisecond of CPU per call and one
CPython process (one GIL) would cap the load; the load generator shares the machine
with gunicorn and PostgreSQL, so each process reports the CPU it used (os.times).
Note: gunicorn's sync workers answer `Connection: close`, so despite the Session every
request opens a new TCP connection (as real pilots behind a sync gunicorn would).
"""

import multiprocessing
import os
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import requests


@dataclass(frozen=True)
class Mode:
    key: str
    label: str
    path: str
    n_jobs: int | None  # None: the pilot sends no nJobs (one job, flat answer)


MODES = {
    "full1": Mode("full1", "getJob, 1 job/call", "/server/panda/getJob", None),
    "bare1": Mode("bare1", "bare SQL, 1 job/call", "/bench/bare-getjob", 1),
    "full10": Mode("full10", "getJob nJobs=10", "/server/panda/getJob", 10),
    "bare10": Mode("bare10", "bare SQL, limit 10", "/bench/bare-getjob", 10),
    "barep1": Mode("barep1", "bare prepared, 1 job", "/bench/bare-getjob-prepared", 1),
}


@dataclass
class PilotStats:
    """What the pilots of one process saw."""

    requests: int = 0
    errors: int = 0
    empty: int = 0
    pandaids: list = field(default_factory=list)
    latencies: list = field(default_factory=list)
    last_done: float = 0.0
    cpu_seconds: float = 0.0
    error_samples: list = field(default_factory=list)
    empty_sites: Counter = field(default_factory=Counter)  # 'no job' answers by site: were jobs really gone?

    def merge(self, other):
        self.requests += other.requests
        self.errors += other.errors
        self.empty += other.empty
        self.pandaids += other.pandaids
        self.latencies += other.latencies
        self.last_done = max(self.last_done, other.last_done)
        self.cpu_seconds += other.cpu_seconds
        self.error_samples = (self.error_samples + other.error_samples)[:5]
        self.empty_sites.update(other.empty_sites)


def _pandaids(response):
    """PandaIDs in a getJob or bare answer; [] for 'no job' (StatusCode 20); ValueError for anything else."""
    if response.status_code != 200:
        raise ValueError(f"HTTP {response.status_code}: {response.text[:120]}")
    answer = response.json()
    code = answer.get("StatusCode")
    if code == 20:
        return []
    if code != 0:
        raise ValueError(f"StatusCode {code}: {answer.get('errorDialog', '')[:120]}")
    if "PandaIDs" in answer:
        return answer["PandaIDs"]
    if "jobs" in answer:
        return [job["PandaID"] for job in answer["jobs"]]
    return [answer["PandaID"]]


def _pilot(url, mode, sites, node, start_at, deadline, stats, lock):
    """One pilot: ask for work back to back until the deadline, a random site each time."""
    session = requests.Session()
    session.headers["Accept"] = "application/json"
    rng = random.Random(node)
    local = PilotStats()
    time.sleep(max(0.0, start_at - time.time()))
    while time.time() < deadline:
        site = rng.choice(sites)
        form = {"siteName": site, "node": node, "mem": "4000", "diskSpace": "20000"}
        if mode.n_jobs is not None:
            form["nJobs"] = str(mode.n_jobs)
        began = time.perf_counter()
        try:
            ids = _pandaids(session.post(url + mode.path, data=form, timeout=60))
        except (requests.RequestException, ValueError, KeyError) as error:
            local.errors += 1
            local.error_samples = (local.error_samples + [repr(error)[:200]])[:5]
            continue
        local.latencies.append(time.perf_counter() - began)
        if len(ids) > (mode.n_jobs or 1):
            # More jobs than asked for: the dispatch statement ran its LIMIT more than once.
            local.errors += 1
            local.error_samples = (local.error_samples + [f"{len(ids)} jobs for nJobs={mode.n_jobs}"])[:5]
        local.requests += 1
        if not ids:
            local.empty += 1
            local.empty_sites[site] += 1
        local.pandaids += ids
        local.last_done = time.time()
    with lock:
        stats.merge(local)


def _load_process(url, mode, sites, threads, index, start_at, deadline, queue):
    # The parent handles Ctrl-C and SIGTERM and terminates us; no tracebacks from every child.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    before = os.times()
    stats, lock = PilotStats(), threading.Lock()
    pilots = [
        threading.Thread(
            target=_pilot, args=(url, mode, sites, f"bench-node-{index}-{n}", start_at, deadline, stats, lock)
        )
        for n in range(threads)
    ]
    for pilot in pilots:
        pilot.start()
    for pilot in pilots:
        pilot.join()
    after = os.times()
    stats.cpu_seconds = (after.user - before.user) + (after.system - before.system)
    queue.put(stats)


def run_pilots(url, mode, sites, *, pilots, processes, seconds, start_delay=0.5):
    """Run `pilots` pilots spread over `processes` processes for `seconds`; returns (merged stats, start time)."""
    context = multiprocessing.get_context("fork")  # children only speak HTTP; fork starts them in milliseconds
    queue = context.Queue()
    start_at = time.time() + start_delay
    deadline = start_at + seconds
    shares = [pilots // processes + (n < pilots % processes) for n in range(processes)]
    workers = [
        context.Process(target=_load_process, args=(url, mode, sites, share, n, start_at, deadline, queue), daemon=True)
        for n, share in enumerate(shares)
        if share
    ]
    try:
        for worker in workers:
            worker.start()
        merged = PilotStats()
        for _ in workers:
            merged.merge(queue.get(timeout=seconds + 120))
        for worker in workers:
            worker.join()
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()  # only our own children, on Ctrl-C or a stuck pilot
    return merged, start_at

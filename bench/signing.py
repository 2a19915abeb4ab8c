"""What signed job records cost (docs/job-signing.md): signatures/s, the pilot's checks/s, getJob and submission.

    cd /work/main && .venv/bin/python bench/signing.py [--jobs 100000 --activated 50000 --sites 10
        --calls 300 --rounds 3 --bits 2048 --reuse]

Uses its own PostgreSQL database (default pandamon_bench_signing), filled by bench/fill.py, and calls
getJob in-process through the whole Django stack, one call after the other (bench/profile_getjob.py's
Caller), in three modes, interleaved over --rounds so that a drift of the machine hits all alike:

- unsigned: no signing key (what a server without PANDA_SIGNING_KEY does);
- stored: the signatures were made beforehand (as at submission) and getJob's statement reads them;
- at dispatch: the stored signatures are by a retired key, so getJob signs every job it hands out
  (what a design without stored signatures would cost).

Then submit_jobs() of --submit jobs (3 inputs, an output and a log each), signed and unsigned, each in a
transaction that is rolled back. Nothing here asserts a timing.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: make `bench` importable

from bench import env, fill  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/pandamon_bench_signing"
MODES = ("unsigned", "stored", "at dispatch")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--activated", type=int, default=50_000)
    parser.add_argument("--sites", type=int, default=10)
    parser.add_argument("--calls", type=int, default=300, help="getJob calls per mode and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bits", type=int, default=2048, choices=(2048, 3072, 4096))
    parser.add_argument("--submit", type=int, default=1000, help="jobs per submission measured")
    parser.add_argument("--reuse", action="store_true", help="keep the filled jobs if they match (signed again)")
    return parser.parse_args(argv)


def rate(function, seconds=1.0):
    """Calls per second of function() over about `seconds`."""
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        function()
        count += 1
    return count / (time.perf_counter() - started)


def primitives(key_path, bits):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from jobs import signing
    from pilot import signature

    private_key = signing.read_key_file(key_path)
    message = signature.canonical_message({"transformation": "x" * 300, "jobPars": "--n 1 " * 40})
    raw = private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    (public,) = signature.parse_pem_keys(signing.public_pem(private_key.public_key())).values()
    public_crypto = private_key.public_key()
    print(f"RSA-{bits}, PKCS#1 v1.5 / SHA-256, one core:")
    print(
        f"  sign (cryptography, server)          {rate(lambda: private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())):8.0f}/s"
    )
    print(f"  verify (pure Python, pilot)          {rate(lambda: signature.verify(message, raw, public)):8.0f}/s")
    print(f"  verify (cryptography, for reference) {rate(lambda: public_crypto.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())):8.0f}/s")  # fmt: skip


def prepare(args):
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    sites = fill.ensure_sites(args.sites)
    if args.reuse and fill.data_matches(args.jobs, args.activated, [site.pk for site in sites]):
        print(f"reusing {args.jobs:,} jobs ({args.activated:,} activated)")
        fill.reset_dispatched(sites)
    else:
        print(f"filling {args.jobs:,} jobs ({args.activated:,} activated) ...")
        fill.fill(args.jobs, args.activated, sites)
    return sites


def sign_activated(key_path):
    """Sign every activated job through the submission code path (jobs/services/signatures.py)."""
    from django.db import connection

    from jobs.models import Job, JobFile
    from jobs.services.signatures import store_signatures

    with connection.cursor() as cursor:  # a reused fill still has the signatures of an earlier run's key
        cursor.execute("TRUNCATE jobs_jobsignature")
    use_key(key_path)
    pandaids = list(Job.objects.filter(status="activated").order_by("pandaid").values_list("pandaid", flat=True))
    started = time.perf_counter()
    for first in range(0, len(pandaids), 2000):
        chunk = pandaids[first : first + 2000]
        files = list(JobFile.objects.filter(job_id__in=chunk).order_by("id"))
        store_signatures(list(Job.objects.filter(pk__in=chunk)), files)
    seconds = time.perf_counter() - started
    print(f"stored signatures of {len(pandaids):,} jobs in {seconds:.1f} s ({len(pandaids) / seconds:,.0f} jobs/s, "
          "reading the jobs and writing the rows included)")  # fmt: skip


def use_key(path, *accepted):
    from django.conf import settings

    settings.PANDA.update(SIGNING_KEY=str(path or ""), SIGNING_KEY_GENERATE=False, SIGNING_ACCEPTED_KEYS=list(accepted))


def use_mode(mode, key_a, key_b):
    use_key({"unsigned": None, "stored": key_a, "at dispatch": key_b}[mode])


def check_answer(caller, mode):
    """One getJob of this mode, checked the way a pilot checks it."""
    from django.conf import settings

    from jobs import signing
    from pilot import signature

    form = {"siteName": caller.sites[0], "node": "bench", "mem": "4000", "diskSpace": "20000"}
    answer = caller.client.post("/server/panda/getJob", form).json()
    if not settings.PANDA["SIGNING_KEY"]:
        print(f"  {mode}: a dispatched job carries {'no' if 'jobSignature' not in answer else 'a'} signature")
        return
    keys = signature.parse_pem_keys("".join(entry["pem"] for entry in signing.published_keys()))
    problem = signature.check_job(answer, keys)
    print(f"  {mode}: a dispatched job checked like a pilot does: {problem or 'valid signature'}")


def measure_getjob(caller, sites, args, key_a, key_b):
    times = {(mode, n): [] for mode in MODES for n in (None, 10)}
    for mode in MODES:
        use_mode(mode, key_a, key_b)
        check_answer(caller, mode)
        for n_jobs in (None, 10):
            for _ in range(20):
                caller.call("full", n_jobs)  # warm up: imports, caches, the key
    for round_number in range(args.rounds):
        for mode in MODES:
            use_mode(mode, key_a, key_b)
            for n_jobs in (None, 10):
                fill.reset_dispatched(sites)
                started = time.perf_counter()
                for _ in range(args.calls):
                    caller.call("full", n_jobs)
                times[mode, n_jobs].append(1000 * (time.perf_counter() - started) / args.calls)
        last = ", ".join(f"{mode} x{n or 1}: {times[mode, n][-1]:.2f} ms" for mode, n in times)
        print(f"  round {round_number + 1}: {last}")
    print("\ngetJob in-process, ms per call (median of rounds):")
    print(f"  {'mode':<12} {'1 job':>8} {'nJobs=10':>9}   vs unsigned")
    for mode in MODES:
        one, ten = (statistics.median(times[mode, n]) for n in (None, 10))
        base_one, base_ten = (statistics.median(times["unsigned", n]) for n in (None, 10))
        print(
            f"  {mode:<12} {one:8.2f} {ten:9.2f}   {100 * (one / base_one - 1):+5.1f} % / {100 * (ten / base_ten - 1):+5.1f} %"
        )


def measure_submission(args, key_a):
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from jobs.services.submission import submit_jobs

    user, _ = get_user_model().objects.get_or_create(username="bench-submitter")
    specs = [
        {"job_name": f"bench.sign.{i}", "transformation": "https://pandaserver.example/trf/runGen-00-00-02",
         "job_parameters": f"--input in.{i}.a,in.{i}.b,in.{i}.c --maxEvents=1000", "prod_source_label": "user",
         "input_files": [{"lfn": f"in.{i}.{k}", "fsize": 10**9, "checksum": "ad:0a0b0c0d"} for k in "abc"],
         "output_files": [{"lfn": f"out.{i}.root", "dataset": "user.bench.out"}]}
        for i in range(args.submit)
    ]  # fmt: skip
    print(f"\nsubmit_jobs() of {args.submit:,} jobs (rolled back), seconds (median of 3):")
    for label, key in (("unsigned", None), ("signed", key_a)):
        use_key(key)
        seconds = []
        for _ in range(3):
            started = time.perf_counter()
            try:
                with transaction.atomic():
                    submit_jobs(submitter=user, specs=specs)
                    seconds.append(time.perf_counter() - started)
                    raise _Rollback
            except _Rollback:
                pass
        median = statistics.median(seconds)
        print(f"  {label:<9} {median:6.2f} s  ({args.submit / median:,.0f} jobs/s)")


class _Rollback(Exception):
    pass


def main(argv=None):
    args = parse_args(argv)
    if "bench" not in args.database_url.rsplit("/", 1)[-1]:
        sys.exit("refusing a database whose name lacks 'bench'")
    fill.ensure_database(args.database_url)
    env.setup_django(args.database_url)
    from bench.profile_getjob import Caller
    from jobs import signing

    keys_dir = Path(tempfile.mkdtemp(prefix="bench-signing-"))
    key_a, key_b = keys_dir / "a.pem", keys_dir / "b.pem"
    signing.write_new_key(key_a, args.bits)
    signing.write_new_key(key_b, args.bits)
    primitives(key_a, args.bits)
    sites = prepare(args)
    sign_activated(key_a)
    caller = Caller([site.name for site in sites])
    try:
        measure_getjob(caller, sites, args, key_a, key_b)
        measure_submission(args, key_a)
    finally:
        fill.reset_dispatched(sites)


if __name__ == "__main__":
    main()

"""Sign new jobs when they are created, so getJob only reads the signature (docs/job-signing.md).

RSA signing costs ~0.3 ms a job (bench/signing.py): done here, in the bulk of a
submission, it stays off getJob, the hottest call of the system. Every path that
creates jobs (submission, which tasks use too, and retries) calls store_signatures;
a job that has no stored signature still gets one at dispatch (jobs/protocol.py).
"""

from collections import defaultdict

from .. import signing
from ..models import JobSignature
from ..protocol import signed_fields


def store_signatures(jobs, files):
    """Sign `jobs` (saved, with their saved `files` in dispatch order) and store the signatures."""
    if not signing.keyring().signs:
        return
    files_by_job = defaultdict(list)
    for job_file in files:
        files_by_job[job_file.job_id].append(job_file)
    rows = []
    for job in jobs:
        key_id, signature = signing.sign_fields(signed_fields(job, files_by_job[job.pandaid]))
        rows.append(JobSignature(job_id=job.pandaid, key_id=key_id, signature=signature))
    JobSignature.objects.bulk_create(rows, batch_size=2000)

"""The PanDA data flow: dispatch blocks bring input to a job's site; outputs are archived at the Tier-1."""

import json
import random
import zlib
from pathlib import Path

import pytest
from django.test import Client

from datasets.choices import Activity, CallbackState, SubscriptionState
from datasets.models import Dataset, FileReplica, ReplicaCallback, Subscription
from datasets.services import deletion, subscriptions
from datasets.services.replicas import deterministic_pfn
from datasets.services.subscriptions import evaluate_subscriptions
from datasets.services.transfers import transfer_batch
from jobs.analysis import explain
from jobs.choices import FileType, JobStatus
from jobs.models import Job, JobFile, JobStatusLog
from jobs.services import adder, brokerage, setupper
from jobs.services.submission import submit_jobs
from sites.services import create_pilot_credential, record_storage_space
from tests.factories import UserFactory

from .conftest import run_agents

pytestmark = pytest.mark.django_db
INPUT = "mc08.105200.T1_McAtNlo_Jimmy.evgen.EVNT.e357"


@pytest.fixture
def alice(db):
    return UserFactory(username="alice")


def input_dataset(grid, site, n=2):
    files = {f"EVNT.0{i}.pool.root": f"event data {i}".encode() * 100 for i in range(1, n + 1)}
    grid.dataset(INPUT, site, files)
    return files


def job_spec(site, inputs, outputs=("AOD.01.pool.root",), output_dataset="user.alice.analysis.v1"):
    return {
        "job_name": "analysis", "transformation": "/bin/true", "computing_site": site.name, "task_id": 42,
        "input_files": [{"lfn": lfn, "dataset": INPUT} for lfn in inputs],
        "output_files": [{"lfn": lfn, "dataset": output_dataset} for lfn in outputs],
        "log_dataset": output_dataset,
    }  # fmt: skip


def test_a_job_needing_remote_input_waits_assigned_until_its_dispatch_block_is_complete(grid, alice):
    files = input_dataset(grid, grid.bnl)
    (pandaid,) = submit_jobs(submitter=alice, specs=[job_spec(grid.mwt2, files)])
    brokerage.broker_defined_jobs()
    job = Job.objects.get(pk=pandaid)
    assert job.status == JobStatus.ASSIGNED
    blocks = set(JobFile.objects.filter(job=job, type=FileType.INPUT).values_list("dispatch_dblock", flat=True))
    (block,) = blocks
    assert block.startswith("panda.42.") and block.endswith(f"_dis{pandaid}") and ".user." in block
    subscription = Subscription.objects.get(dataset__name=block)
    assert (subscription.site, subscription.activity) == (grid.mwt2, Activity.DISPATCH)

    run_agents_partly()  # one file of two arrives: still assigned
    job.refresh_from_db()
    assert job.status == JobStatus.ASSIGNED

    run_agents()
    job.refresh_from_db()
    assert job.status == JobStatus.ACTIVATED
    for lfn, data in files.items():
        assert Path(deterministic_pfn(grid.mwt2, lfn)).read_bytes() == data
    change = JobStatusLog.objects.filter(job=job, new_status=JobStatus.ACTIVATED).get()
    assert change.actor == "activator" and block in change.reason
    assert ReplicaCallback.objects.get(dataset__name=block).state == CallbackState.DONE


def run_agents_partly():
    evaluate_subscriptions()
    transfer_batch(agent="a", batch=1)


def test_a_job_whose_input_is_at_its_site_is_activated_at_once(grid, alice):
    files = input_dataset(grid, grid.mwt2)
    (pandaid,) = submit_jobs(submitter=alice, specs=[job_spec(grid.mwt2, files)])
    brokerage.broker_defined_jobs()
    assert Job.objects.get(pk=pandaid).status == JobStatus.ACTIVATED
    assert not Dataset.objects.filter(name__contains="_dis").exists()


def test_brokerage_prefers_the_site_holding_the_input(grid, alice):
    files = input_dataset(grid, grid.fzk)
    specs = [{**job_spec(grid.fzk, files), "computing_site": None} for _ in range(40)]
    submit_jobs(submitter=alice, specs=specs)
    brokerage.broker_defined_jobs(rng=random.Random(7))
    at_fzk = Job.objects.filter(computing_site=grid.fzk).count()
    assert at_fzk >= 30, at_fzk  # weight x (0.1 + 1) against x 0.1 elsewhere
    assert Job.objects.filter(computing_site=grid.fzk, status=JobStatus.ACTIVATED).count() == at_fzk


def run_job_through_pilot(job, site, outputs):
    """getJob, write the outputs to the site's storage, final updateJob with the report; then the Adder."""
    _, token = create_pilot_credential(name=f"pilot-{job.pk}", sites=[site])
    client, headers = Client(), {"HTTP_AUTHORIZATION": f"Bearer {token}", "HTTP_ACCEPT": "application/json"}
    answer = client.post("/server/panda/getJob", {"siteName": site.name, "node": "wn1"}, **headers).json()
    assert answer["PandaID"] == job.pk
    log = answer["outFiles"].split(",")[-1]
    report = {}
    for lfn, data in {**outputs, log: b"log tarball"}.items():
        path = site_grid_write(site, lfn, data)
        report[lfn] = {
            "guid": None,
            "fsize": len(data),
            "adler32": f"{zlib.adler32(data):08x}",
            "surl": f"file://{path}",
        }
    response = client.post("/server/panda/updateJob", {"jobId": job.pk, "state": "finished", "node": "wn1",
                                                         "xml": json.dumps(report)}, **headers)  # fmt: skip
    assert response.status_code == 200, response.content
    return adder.finalize_job(job.pk)


def site_grid_write(site, lfn, data):
    path = Path(deterministic_pfn(site, lfn))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_outputs_are_archived_at_the_tier1_before_the_job_is_finished(grid, alice):
    files = input_dataset(grid, grid.mwt2)
    (pandaid,) = submit_jobs(submitter=alice, specs=[job_spec(grid.mwt2, files)])
    brokerage.broker_defined_jobs()
    job = Job.objects.get(pk=pandaid)
    sub = f"user.alice.analysis.v1_sub{pandaid}"
    assert set(JobFile.objects.filter(job=job).exclude(type=FileType.INPUT).values_list("destination_dblock",
                                                                                       flat=True)) == {sub}  # fmt: skip
    container = Dataset.objects.get(name="user.alice.analysis.v1")
    assert container.kind == "container" and container.members.get().member.name == sub
    assert Subscription.objects.get(dataset__name=sub).site == grid.bnl  # the US cloud's Tier-1

    outputs = {"AOD.01.pool.root": b"analysis output" * 50}
    assert run_job_through_pilot(job, grid.mwt2, outputs) == JobStatus.TRANSFERRING
    assert FileReplica.objects.filter(site=grid.mwt2, file__lfn="AOD.01.pool.root").exists()
    run_agents()
    job.refresh_from_db()
    assert job.status == JobStatus.FINISHED
    assert Path(deterministic_pfn(grid.bnl, "AOD.01.pool.root")).read_bytes() == outputs["AOD.01.pool.root"]
    assert Dataset.objects.get(name=sub).archived_at is not None
    assert JobStatusLog.objects.filter(job=job, new_status=JobStatus.FINISHED, actor="finisher").exists()


def test_outputs_made_at_the_tier1_finish_at_once(grid, alice):
    files = input_dataset(grid, grid.bnl)
    (pandaid,) = submit_jobs(submitter=alice, specs=[job_spec(grid.bnl, files)])
    brokerage.broker_defined_jobs()
    job = Job.objects.get(pk=pandaid)
    assert job.status == JobStatus.ACTIVATED
    assert run_job_through_pilot(job, grid.bnl, {"AOD.01.pool.root": b"x" * 10}) == JobStatus.FINISHED


def test_dispatch_blocks_are_erased_when_their_jobs_are_done_and_the_copies_reaped(
    grid, alice, django_capture_on_commit_callbacks
):
    files = input_dataset(grid, grid.bnl)
    (pandaid,) = submit_jobs(submitter=alice, specs=[job_spec(grid.mwt2, files, outputs=())])
    brokerage.broker_defined_jobs()
    run_agents()
    assert setupper.clean_dispatch_blocks() == {"erased": 0}  # the job still needs its input
    Job.objects.filter(pk=pandaid).update(status=JobStatus.FINISHED)
    assert setupper.clean_dispatch_blocks() == {"erased": 1}
    assert not Subscription.objects.filter(activity=Activity.DISPATCH).exists()
    with django_capture_on_commit_callbacks(execute=True):  # files leave the storage after commit
        reaped = deletion.reap_expired_replicas()
    assert reaped["replicas"] == 1 and reaped["files"] == 2
    for lfn in files:
        assert not Path(deterministic_pfn(grid.mwt2, lfn)).exists()  # the copies went
        assert Path(deterministic_pfn(grid.bnl, lfn)).exists()  # the original stays
    assert not FileReplica.objects.filter(site=grid.mwt2).exists()
    assert FileReplica.objects.filter(site=grid.bnl).count() == 2


def test_a_subscribed_replica_is_never_reaped(grid, alice):
    files = input_dataset(grid, grid.bnl)
    (pandaid,) = submit_jobs(submitter=alice, specs=[job_spec(grid.mwt2, files, outputs=())])
    brokerage.broker_defined_jobs()
    subscriptions.create_subscription(user=grid.operator, name=INPUT, site_name="MWT2")
    run_agents()
    Job.objects.filter(pk=pandaid).update(status=JobStatus.FINISHED)
    setupper.clean_dispatch_blocks()
    assert deletion.reap_expired_replicas()["files"] == 0  # the input dataset's subscription keeps them
    assert FileReplica.objects.filter(site=grid.mwt2).count() == 2
    assert Subscription.objects.get(dataset__name=INPUT).state == SubscriptionState.DONE


def test_the_analyzer_says_how_far_an_assigned_jobs_input_is(grid, alice):
    files = input_dataset(grid, grid.bnl)
    (pandaid,) = submit_jobs(submitter=alice, specs=[job_spec(grid.mwt2, files)])
    brokerage.broker_defined_jobs()
    evaluate_subscriptions()
    lines = explain(Job.objects.get(pk=pandaid))
    assert any("0 of 2 file(s) at the site; transfers 2 queued, 0 copying, 0 failed" in line for line in lines), lines


def test_brokerage_leaves_out_sites_whose_storage_is_full(grid, alice):
    record_storage_space(site=grid.mwt2, used_bytes=10**12, free_bytes=10**8, total_bytes=10**12, reported_by="t")
    (pandaid,) = submit_jobs(submitter=alice, specs=[{**job_spec(grid.mwt2, [], outputs=()), "input_files": []}])
    brokerage.broker_defined_jobs()
    job = Job.objects.get(pk=pandaid)
    assert job.status == JobStatus.DEFINED
    assert "storage 0.1 GB free < 1 GB" in job.brokerage_error_diag


def test_the_analyzer_gives_the_queue_position_and_a_failing_channel(grid, alice):
    from django.utils import timezone

    from datasets.models import TransferChannelStat

    files = input_dataset(grid, grid.bnl)
    other = {"OTHER._0001.root": b"o" * 10, "OTHER._0002.root": b"p" * 10, "OTHER._0003.root": b"q" * 10}
    grid.dataset("data08.00091900.physics.RAW", grid.fzk, other)
    # Data taking is claimed before PanDA's dispatch blocks (datasets.services.priorities).
    subscriptions.create_subscription(user=grid.operator, name="data08.00091900.physics.RAW", site_name="MWT2",
                                      priority=5, activity="data_taking")  # fmt: skip
    (pandaid,) = submit_jobs(submitter=alice, specs=[job_spec(grid.mwt2, files)])
    brokerage.broker_defined_jobs()
    evaluate_subscriptions()
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    TransferChannelStat.objects.create(hour=hour, source=grid.bnl, destination=grid.mwt2, files_done=1,
                                       files_failed=9, last_error="connection refused")  # fmt: skip
    lines = explain(Job.objects.get(pk=pandaid))
    assert any("transfer queue position 3" in line for line in lines), lines  # the data-taking files go first
    assert any(line.startswith(f"channel BNL→MWT2 failing since {hour:%H:%M} UTC (9 failed, 1 done)") for line in lines)

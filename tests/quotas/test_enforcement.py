"""Quota enforcement: hard limits refuse with the exact message, soft limits lower priority,
groups need membership, running limits throttle; users read their quotas."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from jobs.choices import JobStatus
from jobs.models import Job
from pandamon import roles
from pandamon.models import Identity, PhysicsGroup
from quotas.choices import AccountKind, Resource, SubjectKind
from quotas.models import AccountUsage, DailyUsage, QuotaRule
from quotas.selectors import limits_for, quota_report
from quotas.services import accounting, throttle

from ..factories import JobFactory, UserFactory, grant_role

pytestmark = pytest.mark.django_db


def rule(kind, name, resource, soft=None, hard=None):
    QuotaRule.objects.update_or_create(
        subject_kind=kind, subject_name=name, resource=resource, defaults={"soft_limit": soft, "hard_limit": hard}
    )


def jobs(n, **fields):
    return [{"job_name": f"j{i}", "transformation": "/bin/true", **fields} for i in range(n)]


def test_queued_jobs_hard_limit_refuses_the_whole_submission_with_the_numbers(api, user):
    rule(SubjectKind.USER, "alice", Resource.QUEUED_JOBS, hard=5)
    assert api.post("/api/v1/jobs/", jobs(4), format="json").status_code == 201
    accounting.fold_everything(lag_seconds=0)
    response = api.post("/api/v1/jobs/", jobs(2), format="json")
    assert response.status_code == 429
    assert response.json()["error"] == (
        "quota exceeded: you (alice) have 4 of 5 queued jobs and this submission adds 2; "
        "queued jobs free up as they start running"
    )
    assert Job.objects.count() == 4, "nothing of a refused submission is kept"
    assert api.post("/api/v1/jobs/", jobs(1), format="json").status_code == 201


def test_cpu_hours_hard_limit_says_when_it_resets(api, user):
    rule(SubjectKind.USER, "alice", Resource.CPU_HOURS_DAY, hard=10)
    DailyUsage.objects.create(kind=AccountKind.USER, name="alice", day=timezone.now().date(), cpu_seconds=11 * 3600)
    response = api.post("/api/v1/jobs/", jobs(1), format="json")
    tomorrow = (timezone.now() + timedelta(days=1)).date()
    assert response.status_code == 429
    assert response.json()["error"] == (
        f"quota exceeded: you (alice) have used 11.0 of 10 CPU hours today; resets at {tomorrow} 00:00 UTC"
    )


def test_weekly_cpu_counts_the_last_seven_days(api, user):
    rule(SubjectKind.USER, "alice", Resource.CPU_HOURS_WEEK, hard=100)
    today = timezone.now().date()
    for days_ago in (0, 3, 6):
        DailyUsage.objects.create(
            kind=AccountKind.USER, name="alice", day=today - timedelta(days=days_ago), cpu_seconds=30 * 3600
        )
    DailyUsage.objects.create(kind=AccountKind.USER, name="alice", day=today - timedelta(days=7), cpu_seconds=10**7)
    assert api.post("/api/v1/jobs/", jobs(1), format="json").status_code == 201, "90 h in the last 7 days"
    DailyUsage.objects.filter(name="alice", day=today).update(cpu_seconds=40 * 3600)
    response = api.post("/api/v1/jobs/", jobs(1), format="json")
    assert response.status_code == 429 and "100.0 of 100 CPU hours over the last 7 days" in response.json()["error"]


def test_soft_limit_lowers_the_priority_of_new_jobs(api, user, settings):
    rule(SubjectKind.USER, "alice", Resource.QUEUED_JOBS, soft=2, hard=100)
    first = api.post("/api/v1/jobs/", jobs(2), format="json").json()["pandaids"]
    accounting.fold_everything(lag_seconds=0)
    later = api.post("/api/v1/jobs/", jobs(1), format="json").json()["pandaids"]
    penalty = settings.PANDA["SOFT_QUOTA_PRIORITY_PENALTY"]
    assert Job.objects.get(pk=first[0]).current_priority == 1000
    assert Job.objects.get(pk=later[0]).current_priority == 1000 - 2 // 5 - penalty


def test_group_submission_needs_membership_and_counts_for_the_group(api, user):
    PhysicsGroup.objects.create(name="phys-top")
    response = api.post("/api/v1/jobs/", jobs(1, working_group="phys-top"), format="json")
    assert response.status_code == 403
    assert response.json()["error"] == "you are not a member of physics group 'phys-top', so you cannot submit as it"
    PhysicsGroup.objects.get(name="phys-top").members.add(user)
    rule(SubjectKind.GROUP, "phys-top", Resource.QUEUED_JOBS, hard=3)
    assert api.post("/api/v1/jobs/", jobs(3, working_group="phys-top"), format="json").status_code == 201
    accounting.fold_everything(lag_seconds=0)
    assert AccountUsage.objects.get(kind=AccountKind.GROUP, name="phys-top").queued_jobs == 3
    response = api.post("/api/v1/jobs/", jobs(1, working_group="phys-top"), format="json")
    assert response.status_code == 429 and response.json()["error"].startswith(
        "quota exceeded: group phys-top has 3 of 3 queued jobs"
    )
    assert api.post("/api/v1/jobs/", jobs(1), format="json").status_code == 201, "alice's own quota is separate"


def test_jobs_record_the_submitters_registered_dn_not_the_requests(api, user):
    Identity.objects.create(user=user, dn="/DC=ch/DC=cern/OU=Users/CN=alice")
    [pandaid] = api.post("/api/v1/jobs/", jobs(1, prod_user_id="/CN=someone-else"), format="json").json()["pandaids"]
    job = Job.objects.get(pk=pandaid)
    assert (job.prod_user_name, job.prod_user_id) == ("alice", "/DC=ch/DC=cern/OU=Users/CN=alice")


def test_limits_come_from_the_override_else_the_most_generous_role():
    manager = grant_role(UserFactory(username="pm"), roles.PRODUCTION_MANAGER)
    rule(SubjectKind.ROLE, "user", Resource.RUNNING_JOBS, hard=10)
    rule(SubjectKind.ROLE, roles.PRODUCTION_MANAGER, Resource.RUNNING_JOBS, hard=None)
    assert limits_for(AccountKind.USER, "bob", user=UserFactory(username="bob"))[Resource.RUNNING_JOBS].hard == 10
    assert limits_for(AccountKind.USER, "pm", user=manager)[Resource.RUNNING_JOBS].hard is None
    rule(SubjectKind.USER, "pm", Resource.RUNNING_JOBS, hard=3)
    limit = limits_for(AccountKind.USER, "pm", user=manager)[Resource.RUNNING_JOBS]
    assert (limit.hard, limit.source) == (3, "user pm")


def test_running_limit_throttles_waiting_jobs_and_releases_them_best_first():
    alice = UserFactory(username="alice")
    rule(SubjectKind.USER, "alice", Resource.RUNNING_JOBS, hard=2)
    running = [JobFactory(owner=alice, status=JobStatus.RUNNING) for _ in range(2)]
    waiting = [JobFactory(owner=alice, status=JobStatus.ACTIVATED, current_priority=p) for p in (900, 1100, 1000)]
    AccountUsage.objects.create(kind=AccountKind.USER, name="alice", running_jobs=2, queued_jobs=3)

    assert throttle.apply_running_limits() == {"throttled": 3, "released": 0}
    assert set(Job.objects.filter(pk__in=[j.pk for j in waiting]).values_list("status", flat=True)) == {"throttled"}

    Job.objects.filter(pk=running[0].pk).update(status=JobStatus.FINISHED)
    AccountUsage.objects.filter(name="alice").update(running_jobs=1)
    assert throttle.apply_running_limits() == {"throttled": 0, "released": 1}
    assert Job.objects.get(status=JobStatus.ACTIVATED).current_priority == 1100


def test_users_read_their_quotas_and_history(api, user):
    rule(SubjectKind.USER, "alice", Resource.QUEUED_JOBS, soft=10, hard=20)
    api.post("/api/v1/jobs/", jobs(3), format="json")
    accounting.fold_everything(lag_seconds=0)
    data = api.get("/api/v1/quotas/me").json()
    [account] = data["accounts"]
    queued = next(line for line in account["quotas"] if line["resource"] == "queued_jobs")
    assert (queued["used"], queued["soft"], queued["hard"], queued["source"]) == (3, 10, 20, "user alice")
    assert account["history"][-1]["submitted"] == 3
    assert Client().get("/api/v1/quotas/me").status_code in (401, 403)


def test_storage_quota_refuses_replicas_over_it_and_keeps_nothing():
    from datasets.models import FileReplica
    from datasets.services import catalog, replicas

    from ..factories import SiteFactory

    alice = UserFactory(username="alice")
    site = SiteFactory(name="BNL", storage_endpoint="/data/bnl")
    rule(SubjectKind.USER, "alice", Resource.STORAGE_BYTES, hard=2500)
    catalog.register_new_datasets(user=alice, specs=[{"name": "user.alice.big"}])
    files = [{"lfn": f"user.alice.big.{i}.root", "fsize": 1000, "adler32": "0000abcd"} for i in range(4)]
    catalog.add_files_to_dataset(user=alice, name="user.alice.big", files=files)
    assert replicas.register_file_replicas(user=alice, site_name="BNL", replicas=files[:2]) == 2
    with pytest.raises(Exception) as refused:
        replicas.register_file_replicas(user=alice, site_name="BNL", replicas=files[2:])
    assert refused.value.status_code == 429
    assert str(refused.value) == (
        "quota exceeded: user alice's datasets would hold 4,000 bytes, over the 2,500 byte storage quota; "
        "erase datasets you no longer need (dq2 erase) and try again"
    )
    assert FileReplica.objects.filter(site=site).count() == 2, "the refused registration left nothing"


def test_a_group_at_its_running_limit_is_throttled_even_when_its_users_have_room():
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    rule(SubjectKind.GROUP, "phys-susy", Resource.RUNNING_JOBS, hard=1)
    JobFactory(owner=alice, working_group="phys-susy", status=JobStatus.RUNNING)
    group_job = JobFactory(owner=bob, working_group="phys-susy", status=JobStatus.ACTIVATED)
    own_job = JobFactory(owner=bob, status=JobStatus.ACTIVATED)
    AccountUsage.objects.create(kind=AccountKind.GROUP, name="phys-susy", running_jobs=1)
    AccountUsage.objects.create(kind=AccountKind.USER, name="alice", running_jobs=1)

    assert throttle.apply_running_limits() == {"throttled": 1, "released": 0}
    group_job.refresh_from_db()
    own_job.refresh_from_db()
    assert (group_job.status, own_job.status) == (JobStatus.THROTTLED, JobStatus.ACTIVATED)
    AccountUsage.objects.filter(name="phys-susy").update(running_jobs=0)
    assert throttle.apply_running_limits() == {"throttled": 0, "released": 1}


def test_quota_page_shows_usage_against_limits_with_its_history():
    alice = UserFactory(username="alice")
    rule(SubjectKind.USER, "alice", Resource.QUEUED_JOBS, soft=1, hard=5)
    AccountUsage.objects.create(kind=AccountKind.USER, name="alice", queued_jobs=3)
    DailyUsage.objects.create(kind=AccountKind.USER, name="alice", day=timezone.now().date(), finished=4,
                              cpu_seconds=7200)  # fmt: skip
    client = Client()
    assert client.get("/quotas/").status_code == 302, "log in first"
    client.force_login(alice)
    html = client.get("/quotas/").content.decode()
    assert 'class="over-soft"' in html and "plotly.min.js" in html and 'data-figure="figure-user-alice"' in html
    data = client.get("/quotas/", {"json": ""}).json()
    queued = next(q for q in data["accounts"][0]["quotas"] if q["resource"] == "queued_jobs")
    assert (queued["used"], queued["soft"], queued["hard"]) == (3, 1, 5)
    assert data["accounts"][0]["history"][-1]["finished"] == 4
    assert client.get("/quotas/", {"user": "root"}).status_code == 403
    client.force_login(grant_role(UserFactory(username="shifty"), roles.SHIFTER))
    assert client.get("/quotas/", {"user": "alice", "json": ""}).json()["user"] == "alice"
    assert client.get("/quotas/", {"user": "nobody"}).status_code == 404


def test_a_per_site_storage_quota_limits_that_site_only():
    from datasets.services import catalog, replicas

    from ..factories import SiteFactory

    alice = UserFactory(username="alice")
    bnl, cern = SiteFactory(name="BNL", storage_endpoint="/bnl"), SiteFactory(name="CERN", storage_endpoint="/cern")
    QuotaRule.objects.create(subject_kind=SubjectKind.USER, subject_name="alice", resource=Resource.STORAGE_BYTES,
                             site=bnl, hard_limit=1500)  # fmt: skip
    files = [{"lfn": f"user.alice.s.{i}.root", "fsize": 1000, "adler32": "0000abcd"} for i in range(2)]
    catalog.register_new_datasets(user=alice, specs=[{"name": "user.alice.s", "files": files}])
    assert replicas.register_file_replicas(user=alice, site_name="CERN", replicas=files) == 2
    with pytest.raises(Exception) as refused:
        replicas.register_file_replicas(user=alice, site_name="BNL", replicas=files)
    assert "would hold 2,000 bytes at BNL, over the 1,500 byte storage quota" in str(refused.value)
    assert replicas.register_file_replicas(user=alice, site_name="BNL", replicas=files[:1]) == 1
    report = next(line for line in quota_report(alice)[0]["quotas"] if line.get("site") == "BNL")
    assert (report["used"], report["hard"]) == (1000, 1500)
    assert cern.pk

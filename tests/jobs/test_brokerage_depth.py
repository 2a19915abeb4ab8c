"""Brokerage in depth: releases, site lists of tasks, quotas, queue limits, the decision log, priorities
and the dispatch order they lead to (docs/brokerage.md)."""

import random
from collections import Counter

import pytest
from django.utils import timezone

from jobs.brokerage_selectors import brokerage_decision
from jobs.choices import JobStatus
from jobs.models import BrokerageContext, BrokerageDecision, Job
from jobs.services import brokerage, dispatcher
from jobs.services.submission import submit_jobs
from pandamon import roles
from quotas.choices import AccountKind, Resource, SubjectKind
from quotas.models import AccountUsage, QuotaRule
from sites.choices import SiteStatus
from sites.models import Site
from tasks.models import Task

from ..factories import JobFactory, SiteFactory, UserFactory, grant_role

pytestmark = pytest.mark.django_db
D = BrokerageDecision.Outcome


def broker(seed=1, **kwargs):
    return brokerage.broker_defined_jobs(rng=random.Random(seed), **kwargs)


def placed(jobs):
    return Counter(Job.objects.get(pk=job.pk).computing_site.name for job in jobs)


def site_named(name):
    return Site.objects.get(name=name)


def decision(job):
    return BrokerageDecision.objects.get(job_id=job.pk)


def task(name="t1", **fields):
    owner = UserFactory(username="prodmgr")
    return Task.objects.create(name=name, type="production", owner=owner, owner_name=owner.username,
                               transformation="t", input_dataset="mc.in", output_dataset="mc.out", **fields)  # fmt: skip


# -- releases ------------------------------------------------------------------------------------------


def test_release_installed_semantics():
    site = SiteFactory.build(releases=["11.0.3", "12.0.*"])
    assert brokerage.release_installed(site, "11.0.3") and brokerage.release_installed(site, "12.0.6")
    assert not brokerage.release_installed(site, "11.0.4") and not brokerage.release_installed(site, "13.0.1")
    assert brokerage.release_installed(site, ""), "a job without a release goes anywhere"
    assert brokerage.release_installed(SiteFactory.build(releases=[]), "99.9"), "a site listing none takes any"
    assert brokerage.release_installed(SiteFactory.build(releases=["ANY"]), "99.9")


def test_jobs_go_only_where_their_release_is_installed():
    SiteFactory(name="OLD", releases=["11.0.3"])
    SiteFactory(name="NEW", releases=["12.0.*"])
    SiteFactory(name="OPEN", releases=[])
    jobs = JobFactory.create_batch(60, sw_release="12.0.6")
    old = JobFactory.create_batch(10, sw_release="11.0.3")
    unlisted = JobFactory(sw_release="13.0.0")
    assert broker() == {"jobs": 71, "activated": 71, "assigned": 0, "no_site": 0}
    assert set(placed(jobs)) == {"NEW", "OPEN"}
    assert set(placed(old)) <= {"OLD", "OPEN"}
    assert placed([unlisted]) == {"OPEN": 1}, "a site that lists no release takes any"
    rejected = BrokerageContext.objects.get(pk=decision(jobs[0]).context_id).rejected
    assert rejected == {"release": {"n": 1, "sites": ["OLD"]}}


def test_a_release_installed_nowhere_leaves_the_job_defined_with_a_diagnostic():
    SiteFactory(name="OLD", releases=["11.0.3"])
    SiteFactory(name="NEW", releases=["12.0.*"])
    job = JobFactory(sw_release="13.0.0")
    broker()
    job.refresh_from_db()
    assert (job.status, job.brokerage_error_code) == (JobStatus.DEFINED, brokerage.NO_SITE)
    assert job.brokerage_error_diag == "no online site fits (2 online): release 13.0.0 is not installed at 2 site(s)"
    assert job.modification_time < job.brokered_at, "the defined timeout runs for jobs no site takes"
    assert decision(job).outcome == D.NO_SITE


def test_a_job_given_a_site_without_its_release_waits_and_says_why():
    site = SiteFactory(name="OLD", releases=["11.0.3"])
    job = JobFactory(computing_site=site, sw_release="12.0.1")
    broker()
    job.refresh_from_db()
    assert (job.status, job.brokerage_error_code) == (JobStatus.DEFINED, brokerage.ASSIGNED_SITE_UNFIT)
    assert job.brokerage_error_diag == "assigned site OLD cannot run it: release 12.0.1 is not installed"


# -- site lists of the task ----------------------------------------------------------------------------


def test_a_tasks_excluded_sites_are_left_out_and_counted():
    SiteFactory(name="A")
    SiteFactory(name="B")
    t = task(excluded_sites=["A"])
    jobs = JobFactory.create_batch(30, task_id=t.pk)
    others = JobFactory.create_batch(30)  # no task: may go to A
    broker()
    assert set(placed(jobs)) == {"B"}
    assert set(placed(others)) == {"A", "B"}
    context = BrokerageContext.objects.get(pk=decision(jobs[0]).context_id)
    assert context.rejected == {"task_excluded": {"n": 1, "sites": ["A"]}}
    assert context.needs["rules"] == [{"reason": "task_excluded", "why": f"excluded by task {t.pk}", "exclude": ["A"]}]


def test_a_tasks_site_list_is_read_at_each_pass_and_its_site_is_the_only_one():
    SiteFactory(name="A")
    SiteFactory(name="B")
    t = task(excluded_sites=["A", "B"])
    job = JobFactory(task_id=t.pk)
    broker()
    job.refresh_from_db()
    assert job.brokerage_error_diag == f"no online site fits (2 online): 2 site(s) excluded by task {t.pk}"
    Task.objects.filter(pk=t.pk).update(excluded_sites=[], site="B")
    broker()
    job.refresh_from_db()
    assert (job.status, job.computing_site.name) == (JobStatus.ACTIVATED, "B")


def test_a_job_pinned_to_a_site_its_task_excludes_waits():
    a = SiteFactory(name="A")
    t = task(excluded_sites=["A"])
    job = JobFactory(task_id=t.pk, computing_site=a)
    broker()
    job.refresh_from_db()
    assert job.brokerage_error_diag == f"assigned site A cannot run it: excluded by task {t.pk}"
    assert decision(job).outcome == D.UNFIT


# -- quotas --------------------------------------------------------------------------------------------


def quota(kind, name, resource, hard, site=None):
    QuotaRule.objects.update_or_create(subject_kind=kind, subject_name=name, resource=resource, site=site,
                                       defaults={"hard_limit": hard})  # fmt: skip


def test_jobs_of_an_account_at_its_running_jobs_quota_are_held_until_it_has_room():
    SiteFactory(name="A")
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    quota(SubjectKind.USER, "alice", Resource.RUNNING_JOBS, hard=2)
    usage = AccountUsage.objects.create(kind=AccountKind.USER, name="alice", running_jobs=2)
    held = JobFactory.create_batch(3, owner=alice)
    free = JobFactory.create_batch(3, owner=bob)
    assert broker() == {"jobs": 6, "activated": 3, "assigned": 0, "no_site": 0, "held": 3}
    job = Job.objects.get(pk=held[0].pk)
    assert (job.status, job.brokerage_error_code) == (JobStatus.DEFINED, brokerage.HELD)
    assert job.brokerage_error_diag == (
        "held: user alice is at the running-jobs quota (2 of 2 running); brokered when its running jobs end"
    )
    assert decision(job).outcome == D.HELD
    assert job.modification_time == job.brokered_at, "held, not stuck: the defined timeout does not run"
    assert all(Job.objects.get(pk=j.pk).status == JobStatus.ACTIVATED for j in free)
    usage.running_jobs = 1
    usage.save()
    broker()
    assert all(Job.objects.get(pk=j.pk).status == JobStatus.ACTIVATED for j in held)


def test_a_group_at_its_running_jobs_quota_holds_its_members_jobs():
    SiteFactory(name="A")
    quota(SubjectKind.GROUP, "phys-higgs", Resource.RUNNING_JOBS, hard=5)
    AccountUsage.objects.create(kind=AccountKind.GROUP, name="phys-higgs", running_jobs=7)
    group_job = JobFactory(working_group="phys-higgs")
    own_job = JobFactory(owner=group_job.owner)
    broker()
    assert Job.objects.get(pk=group_job.pk).brokerage_error_diag.startswith("held: group phys-higgs is at")
    assert Job.objects.get(pk=own_job.pk).status == JobStatus.ACTIVATED


def test_analysis_jobs_avoid_sites_where_their_owner_is_at_the_storage_quota():
    from datasets.services import catalog, replicas

    alice = UserFactory(username="alice")
    full = SiteFactory(name="FULL", storage_endpoint="/full")
    SiteFactory(name="FREE", storage_endpoint="/free")
    files = [{"lfn": f"user.alice.s.{i}.root", "fsize": 1000, "adler32": "0000abcd"} for i in range(2)]
    catalog.register_new_datasets(user=alice, specs=[{"name": "user.alice.s", "files": files}])
    replicas.register_file_replicas(user=alice, site_name="FULL", replicas=files)
    quota(SubjectKind.USER, "alice", Resource.STORAGE_BYTES, hard=2000, site=full)
    analysis = JobFactory.create_batch(20, owner=alice, prod_source_label="user")
    production = JobFactory.create_batch(20, owner=alice, prod_source_label="managed")
    broker()
    assert set(placed(analysis)) == {"FREE"}
    assert set(placed(production)) == {"FULL", "FREE"}, "production outputs are not user datasets"
    rejected = BrokerageContext.objects.get(pk=decision(analysis[0]).context_id).rejected
    assert rejected == {"storage_quota": {"n": 1, "sites": ["FULL"]}}


# -- load, queues, candidates --------------------------------------------------------------------------


def test_a_site_whose_queue_is_full_takes_no_more_jobs():
    small = SiteFactory(name="SMALL", max_running_jobs=2)  # takes up to 2 x 2 = 4 queued jobs
    SiteFactory(name="BIG", max_running_jobs=1000)
    JobFactory.create_batch(4, computing_site=small, status=JobStatus.ACTIVATED)
    jobs = JobFactory.create_batch(20)
    broker()
    assert set(placed(jobs)) == {"BIG"}
    rejected = BrokerageContext.objects.get(pk=decision(jobs[0]).context_id).rejected
    assert rejected == {"queue_full": {"n": 1, "sites": ["SMALL"]}}


def test_a_queue_that_fills_up_during_a_pass_stops_taking_jobs():
    SiteFactory(name="SMALL", max_running_jobs=2)
    jobs = JobFactory.create_batch(10)
    assert broker() == {"jobs": 10, "activated": 4, "assigned": 0, "no_site": 6}
    assert placed(jobs[:4]) == {"SMALL": 4}
    late = Job.objects.get(pk=jobs[-1].pk)
    assert late.brokerage_error_diag == (
        "no online site fits (1 online): 1 site(s) have a full queue (2 x their running-job limit)"
    )


def test_the_jobs_of_one_group_go_to_at_most_the_top_sites_in_one_pass(settings):
    settings.PANDA = {**settings.PANDA, "BROKERAGE_TOP_SITES": 3}
    for n in range(8):
        SiteFactory(name=f"S{n}")
    jobs = JobFactory.create_batch(200)
    broker(seed=2)
    assert len(placed(jobs)) == 3
    assert all(len(decision(job).candidates) <= 3 for job in jobs)


def test_one_run_works_off_the_whole_backlog_in_batches_and_tries_refused_jobs_once():
    SiteFactory(name="A", max_memory_mb=4000)
    jobs = JobFactory.create_batch(35)
    stuck = JobFactory.create_batch(5, min_ram_count=99999)
    counts = broker(batch=10)
    assert counts["jobs"] == 40 and counts["activated"] == 35 and counts["no_site"] == 5
    assert all(Job.objects.get(pk=j.pk).status == JobStatus.ACTIVATED for j in jobs)
    assert BrokerageDecision.objects.filter(job__in=stuck, outcome=D.NO_SITE).count() == 5
    assert broker(batch=10)["jobs"] == 5, "the next run tries them again"
    assert broker(batch=10, seconds=0) == {"jobs": 5, "activated": 0, "assigned": 0, "no_site": 5}


def test_registering_a_site_filter_twice_has_no_effect():
    calls = []

    def site_filter(jobs):
        calls.append(len(jobs))
        return {jobs[0].pandaid: brokerage.SiteRule("test", "left out by the test", exclude=frozenset({"A"}))}

    brokerage.register_site_filter(site_filter)
    brokerage.register_site_filter(site_filter)
    try:
        SiteFactory(name="A")
        SiteFactory(name="B")
        first, second = JobFactory(), JobFactory()
        broker()
        assert calls == [2]
        assert Job.objects.get(pk=first.pk).computing_site.name == "B"
        assert Job.objects.get(pk=second.pk).status == JobStatus.ACTIVATED
    finally:
        brokerage._site_filters.remove(site_filter)


# -- the decision log ----------------------------------------------------------------------------------


def test_every_job_brokered_has_one_decision_with_candidates_weights_and_rejections():
    SiteFactory(name="SMALL", max_memory_mb=2000)
    SiteFactory(name="TINY", max_memory_mb=1000, cores=1)
    SiteFactory(name="DOWN", status=SiteStatus.OFFLINE)
    SiteFactory(name="BIG1", max_memory_mb=16000)
    SiteFactory(name="BIG2", max_memory_mb=16000)
    JobFactory.create_batch(30, computing_site=site_named("BIG1"), status=JobStatus.RUNNING)
    jobs = JobFactory.create_batch(20, min_ram_count=8000)
    broker(seed=4)
    assert BrokerageDecision.objects.filter(job__in=jobs).count() == 20
    row = decision(jobs[0])
    assert row.outcome == D.PICKED and row.diag == ""
    assert row.site_id == Job.objects.get(pk=jobs[0].pk).computing_site_id
    names = {site_named("BIG1").pk: "BIG1", site_named("BIG2").pk: "BIG2"}
    assert {names[site_id] for site_id, _, _ in row.candidates} == {"BIG1", "BIG2"}
    weights = [weight for _, weight, _ in row.candidates]
    assert weights == sorted(weights, reverse=True) and all(w > 0 for w in weights)
    assert names[row.candidates[0][0]] == "BIG1", "31 running jobs weigh more than none"
    assert [share for _, _, share in row.candidates] == [1, 1], "no catalogued input: every site holds it all"
    context = BrokerageContext.objects.get(pk=row.context_id)
    assert (context.n_sites, context.n_eligible) == (5, 2)
    assert context.rejected == {"memory": {"n": 2, "sites": ["SMALL", "TINY"]}, "status": {"n": 1, "sites": ["DOWN"]}}
    assert context.needs == {"memory_mb": 8000, "disk_mb": 0, "walltime_s": 0, "cores": 1}
    assert BrokerageContext.objects.count() == 1, "the 20 jobs with the same needs share one context"


def test_the_selector_for_the_job_page():
    SiteFactory(name="SMALL", max_memory_mb=2000)
    SiteFactory(name="BIG", max_memory_mb=16000)
    job = JobFactory(min_ram_count=8000, sw_release="1.0")
    waiting = JobFactory(min_ram_count=64000)
    assert brokerage_decision(pandaid=job.pk) is None
    broker()
    shown = brokerage_decision(pandaid=job.pk)
    assert shown["outcome"] == "picked" and shown["outcome_label"] == "picked among the candidates by weight"
    assert shown["site"] == "BIG" and shown["diag"] == ""
    assert shown["candidates"] == [{"site": "BIG", "weight": pytest.approx(0.11, rel=0.01), "input_share": 1,
                                    "chosen": True}]  # fmt: skip
    assert shown["needs"]["release"] == "1.0" and (shown["n_sites"], shown["n_eligible"]) == (2, 1)
    assert shown["rejected"] == [
        {"reason": "memory", "label": "memory limit below the job's need", "n": 1, "sites": ["SMALL"]}
    ]
    refused = brokerage_decision(pandaid=waiting.pk)
    assert refused["outcome"] == "no_site" and refused["site"] is None and refused["candidates"] == []
    assert refused["diag"] == Job.objects.get(pk=waiting.pk).brokerage_error_diag
    assert {row["reason"] for row in refused["rejected"]} == {"memory"}


def test_a_job_tried_again_keeps_one_decision_its_latest():
    SiteFactory(name="A", max_memory_mb=1000)
    job = JobFactory(min_ram_count=2000)
    broker()
    first = decision(job)
    assert first.outcome == D.NO_SITE
    Site.objects.filter(name="A").update(max_memory_mb=4000)
    broker()
    assert BrokerageDecision.objects.filter(job_id=job.pk).count() == 1
    latest = decision(job)
    assert latest.outcome == D.PICKED and latest.decided_at > first.decided_at


def test_a_job_that_came_with_its_site_is_logged_as_kept():
    site = SiteFactory(name="HERE", status=SiteStatus.BROKEROFF)
    job = JobFactory(computing_site=site)
    broker()
    row = decision(job)
    assert (row.outcome, row.site_id, len(row.candidates)) == (D.KEPT, site.pk, 1)
    assert BrokerageContext.objects.get(pk=row.context_id).needs["site"] == "HERE"


# -- priorities ----------------------------------------------------------------------------------------


def specs(n, **fields):
    return [{"job_name": f"j{i}", "transformation": "/bin/true", **fields} for i in range(n)]


def test_a_users_thousand_queued_jobs_lower_that_users_priority_not_others():
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    now = timezone.now()
    Job.objects.bulk_create(
        Job(job_name=f"q{i}", transformation="t", owner=bob, prod_user_name="bob", prod_source_label="user",
            status=JobStatus.ACTIVATED if i % 2 else JobStatus.RUNNING, creation_time=now, modification_time=now,
            state_change_time=now)
        for i in range(1000)
    )  # fmt: skip
    (bobs,) = submit_jobs(submitter=bob, specs=specs(1))
    (alices,) = submit_jobs(submitter=alice, specs=specs(1))
    assert Job.objects.get(pk=bobs).current_priority == 1000 - 1000 // 5 == 800
    assert Job.objects.get(pk=alices).current_priority == 1000
    more = submit_jobs(submitter=alice, specs=specs(10))
    assert [Job.objects.get(pk=p).current_priority for p in more] == [1000] * 4 + [999] * 5 + [998]


def test_analysis_users_cannot_raise_their_priority_above_1100():
    alice = UserFactory(username="alice")
    (high,) = submit_jobs(submitter=alice, specs=specs(1, priority=5000))
    (low,) = submit_jobs(submitter=alice, specs=specs(1, priority=500))
    assert Job.objects.get(pk=high).assigned_priority == 1100
    assert Job.objects.get(pk=low).current_priority == 500 - 1 // 5


def test_production_jobs_keep_their_tasks_priority_and_test_and_express_jobs_rank_higher():
    manager = grant_role(UserFactory(username="prodmgr"), roles.PRODUCTION_MANAGER)
    managed = submit_jobs(submitter=manager, specs=specs(3, prod_source_label="managed", priority=1500))
    test = submit_jobs(submitter=manager, specs=specs(1, prod_source_label="test", priority=1000))
    prod_test = submit_jobs(submitter=manager, specs=specs(1, prod_source_label="prod_test"))
    express = submit_jobs(
        submitter=manager, specs=specs(1, prod_source_label="managed", special_handling="express", priority=900)
    )
    assert {Job.objects.get(pk=p).current_priority for p in managed} == {1500}
    assert Job.objects.get(pk=test[0]).current_priority == 2000
    assert Job.objects.get(pk=prod_test[0]).current_priority == 2000
    assert Job.objects.get(pk=express[0]).current_priority == 6000


def test_dispatch_order_at_a_site_is_priority_then_age(settings):
    site = SiteFactory(name="SITE", max_running_jobs=0)
    made = {}
    for name, priority in (("old-low", 900), ("old-mid", 1000), ("top", 2000), ("young-mid", 1000)):
        made[name] = JobFactory(computing_site=site, status=JobStatus.ACTIVATED, current_priority=priority).pk
    for single_statement in (True, False):
        Job.objects.filter(pk__in=made.values()).update(status=JobStatus.ACTIVATED)
        settings.PANDA = {**settings.PANDA, "DISPATCH_SINGLE_STATEMENT": single_statement}
        order = []
        for _ in range(4):
            sent, _ = dispatcher.dispatch_jobs(site=site, request=dispatcher.PilotRequest(node="wn1"))
            order += [job.pandaid for job, _ in sent]
        assert order == [made["top"], made["old-mid"], made["young-mid"], made["old-low"]], single_statement


def test_the_job_page_shows_the_brokerage_decision(client):
    SiteFactory(name="BIGSITE", max_memory_mb=8000)
    SiteFactory(name="SMALLSITE", max_memory_mb=1000)
    job = JobFactory(min_ram_count=4000)
    brokerage.broker_defined_jobs()
    data = client.get(f"/jobs/{job.pk}/?json").json()
    decision = data["brokerage_decision"]
    assert decision["site"] == "BIGSITE" and decision["candidates"][0]["chosen"]
    assert any("SMALLSITE" in row["sites"] for row in decision["rejected"])
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "Latest brokerage decision" in page and "Sites left out" in page

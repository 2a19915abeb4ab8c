"""The user list, a user's page and the daily usage summary: counts equal the ORM's, windows, links, errors."""

import html
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from datasets.models import Dataset
from jobs.choices import JobStatus
from jobs.models import Job
from quotas.models import QuotaRule

from ..factories import JobFactory, SiteFactory, UserFactory

pytestmark = pytest.mark.django_db
FINAL = ("finished", "failed", "cancelled", "closed")


def job(owner, site, status, *, age=timedelta(hours=1), **fields):
    moment = timezone.now() - age
    return JobFactory(owner=owner, computing_site=site, status=status, modification_time=moment,
                      state_change_time=moment, **fields)  # fmt: skip


def get_json(url, **params):
    response = Client().get(url, {**params, "json": ""})
    assert response.status_code == 200, response.content
    return response.json()


def hrefs(url, **params):
    page = Client().get(url, params).content.decode()
    return [html.unescape(href) for href in re.findall(r'href="([^"]+)"', page)]


def jobs_total(href):
    response = Client().get(href + "&json")
    assert response.status_code == 200, response.content
    return response.json()["meta"]["total"]


@pytest.fixture
def activity():
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    UserFactory(username="idle")  # an account with no job
    bnl, lyon = SiteFactory(name="BNL"), SiteFactory(name="LYON")
    for _ in range(3):
        job(alice, bnl, JobStatus.FINISHED, cpu_consumption_time=7200, task_id=11)
    job(alice, lyon, JobStatus.FINISHED, cpu_consumption_time=1800, task_id=12)
    job(alice, lyon, JobStatus.FAILED, task_id=12, exe_error_code=65, exe_error_diag="segfault in AthenaSim",
        cpu_consumption_time=999)  # fmt: skip
    job(alice, bnl, JobStatus.RUNNING, task_id=12)
    job(alice, bnl, JobStatus.FINISHED, age=timedelta(days=10), cpu_consumption_time=3600, task_id=10)
    job(alice, bnl, JobStatus.FINISHED, age=timedelta(days=1, hours=2), cpu_consumption_time=3600, task_id=11)
    job(bob, bnl, JobStatus.FAILED, pilot_error_code=1099, pilot_error_diag="stage-in failed")
    job(bob, bnl, JobStatus.CANCELLED, task_buffer_error_code=100)
    JobFactory(owner=None, prod_user_name="certonly", computing_site=lyon, status=JobStatus.FINISHED)
    for number in range(3):
        Dataset.objects.create(name=f"user.alice.set{number}", owner=alice)
    Dataset.objects.create(name="user.alice.gone", owner=alice, erased_at=timezone.now())
    Dataset.objects.create(name="user.bob.set", owner=bob)
    return {"alice": alice, "bob": bob, "BNL": bnl, "LYON": lyon}


def window_jobs(name, days=7):
    return Job.objects.filter(prod_user_name=name, modification_time__gte=timezone.now() - timedelta(days=days))


# ---------------------------------------------------------------- the user list


def test_user_list_counts_equal_orm_counts(activity):
    data = get_json("/users/")
    rows = {row["user"]: row for row in data["rows"]}
    assert set(rows) == {"alice", "bob", "certonly"}
    for name, row in rows.items():
        jobs = window_jobs(name)
        assert row["total"] == jobs.count()
        for status in JobStatus:
            assert row["jobs"][status] == jobs.filter(status=status).count()
        cpu = jobs.filter(status="finished").aggregate(s=Sum("cpu_consumption_time"))["s"] or 0
        assert row["cpu_hours"] == round(cpu / 3600, 1)
        assert row["sites"] == jobs.values("computing_site").distinct().count()
    assert rows["alice"]["cpu_hours"] == 7.5 and rows["alice"]["active"] == 1 and rows["alice"]["sites"] == 2


def test_user_list_window_and_inactive_accounts(activity):
    data = get_json("/users/", days=1)
    assert {row["user"]: row["total"] for row in data["rows"]}["alice"] == 6  # the 26 h old job is out
    assert get_json("/users/", days=30)["rows"][0]["total"] >= 1
    alice_30 = {row["user"]: row for row in get_json("/users/", days=30)["rows"]}["alice"]
    assert alice_30["total"] == window_jobs("alice", 30).count() == 8
    assert data["meta"]["inactive_accounts"] == 1 and data["inactive"] == []
    listed = get_json("/users/", inactive="1")
    assert [row["username"] for row in listed["inactive"]] == ["idle"]
    assert "?inactive=1" in hrefs("/users/")


def test_user_list_name_filter_and_sorting(activity):
    assert [row["user"] for row in get_json("/users/", name="ali*|bob", sortby="user")["rows"]] == ["alice", "bob"]
    assert [row["user"] for row in get_json("/users/", name="!alice", sortby="-total")["rows"]] == ["bob", "certonly"]
    assert get_json("/users/", sortby="-cpu_hours")["rows"][0]["user"] == "alice"


def test_user_list_links_carry_user_state_and_window(activity):
    links = hrefs("/users/")
    link = "/jobs/?produsername=alice&jobstatus=finished&hours=168"
    assert link in links and jobs_total(link) == window_jobs("alice").filter(status="finished").count() == 5
    assert "/users/alice/?hours=168" in links


@pytest.mark.parametrize(
    ("params", "message"),
    [({"days": "abc"}, "days must be a number"), ({"sortby": "age"}, "sortby must be one of"),
     ({"name": "a;b"}, "invalid filter: name"), ({"inactive": "yes"}, "inactive must be 1 or 0"),
     ({"user": "alice"}, "unknown parameter user"), ({"days": "45"}, "at most 30 days")],
)  # fmt: skip
def test_user_list_refuses_bad_parameters(params, message):
    response = Client().get("/users/", {**params, "json": ""})
    assert response.status_code == 400 and message in response.json()["error"]


# ---------------------------------------------------------------- a user's page


def test_user_page_summary_equals_orm_counts_and_links(activity):
    data = get_json("/users/alice/")
    jobs = window_jobs("alice")
    assert data["summary"]["total"] == jobs.count() == 7
    for status in JobStatus:
        assert data["summary"]["jobs"][status] == jobs.filter(status=status).count()
    assert data["summary"]["cpu_hours"] == 7.5
    assert {row["site"]: row["total"] for row in data["sites"]} == {"BNL": 5, "LYON": 2}
    assert data["tasks"]["total"] == jobs.values("task_id").distinct().count() == 2
    assert {row["task_id"]: row["total"] for row in data["tasks"]["rows"]} == {11: 4, 12: 3}
    links = hrefs("/users/alice/")
    link = "/jobs/?produsername=alice&jobstatus=failed&hours=168"
    assert link in links and jobs_total(link) == 1
    assert "/jobs/?produsername=alice&computingsite=BNL&hours=168" in links
    assert jobs_total("/jobs/?produsername=alice&computingsite=BNL&hours=168") == 5


def test_user_page_failures_datasets_and_quota(activity):
    data = get_json("/users/alice/")
    assert [(f["component"], f["code"], f["count"]) for f in data["failures_by_error"]] == [("exe", 65, 1)]
    assert [row["error"]["diag"] for row in data["recent_failures"]] == ["segfault in AthenaSim"]
    assert data["datasets"]["total"] == 3  # the erased one is not counted
    assert {row["name"] for row in data["datasets"]["rows"]} == {f"user.alice.set{n}" for n in range(3)}
    assert data["quota"] == {"visible": False}, "quotas are not public"
    assert "Quotas are shown to the user, shifters and admins" in Client().get("/users/alice/").content.decode()
    # Created here: the installation's default rules come from a data migration, which a transactional
    # test earlier in the session may have flushed.
    QuotaRule.objects.update_or_create(subject_kind="role", subject_name="user", resource="queued_jobs",
                                       site=None, defaults={"soft_limit": 5000, "hard_limit": 20000})  # fmt: skip
    owner = Client()
    owner.force_login(get_user_model().objects.get(username="alice"))
    queued = next(q for q in owner.get("/users/alice/", {"json": ""}).json()["quota"]["quotas"]
                  if q["resource"] == "queued_jobs")  # fmt: skip
    assert (queued["soft"], queued["hard"], queued["source"]) == (5000, 20000, "role user")
    assert any(link.endswith("/user.alice.set0/") for link in hrefs("/users/alice/"))


def test_user_page_window(activity):
    assert get_json("/users/alice/", days=30)["summary"]["total"] == 8
    assert get_json("/users/alice/", hours=2)["summary"]["total"] == 6


def test_user_page_for_names_without_an_account_or_without_jobs(activity):
    certonly = get_json("/users/certonly/")
    assert certonly["account"] is None and certonly["summary"]["total"] == 1
    idle = get_json("/users/idle/")
    assert idle["account"]["username"] == "idle" and idle["summary"]["total"] == 0
    assert Client().get("/users/idle/").status_code == 200


def test_user_page_unknown_user_and_bad_parameters(activity):
    assert Client().get("/users/nobody/").status_code == 404
    assert Client().get("/users/alice/", {"days": "x"}).status_code == 400
    assert Client().get("/users/alice/", {"jobstatus": "failed"}).status_code == 400


# ---------------------------------------------------------------- daily usage


def test_usage_per_day_equals_orm_counts(activity):
    data = get_json("/summary/usage/")
    assert data["meta"]["days"] == 7 and len(data["rows"]) == 7
    for row in data["rows"]:
        ended = Job.objects.filter(status__in=FINAL, modification_time__date=row["day"])
        for status in FINAL:
            assert row[status] == ended.filter(status=status).count(), (row["day"], status)
        cpu = ended.filter(status="finished").aggregate(s=Sum("cpu_consumption_time"))["s"] or 0
        assert row["cpu_hours"] == round(cpu / 3600, 1)
        assert row["users"] == ended.values("prod_user_name").distinct().count()
        assert row["sites"] == ended.exclude(computing_site=None).values("computing_site").distinct().count()
    start = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=6)
    in_period = Job.objects.filter(status__in=FINAL, modification_time__gte=start)
    assert data["totals"]["finished"] == in_period.filter(status="finished").count()
    assert data["totals"]["users"] == in_period.values("prod_user_name").distinct().count()


def test_usage_period_and_links(activity):
    assert len(get_json("/summary/usage/", days=30)["rows"]) == 30
    assert get_json("/summary/usage/", days=30)["totals"]["finished"] == 7
    assert (
        get_json("/summary/usage/", days=1)["totals"]["finished"]
        == Job.objects.filter(status="finished", modification_time__date=timezone.now().date()).count()
    )
    job(activity["bob"], activity["LYON"], JobStatus.FINISHED, age=timedelta(0))
    today = timezone.now().date()
    links = hrefs("/summary/usage/")
    finished_today = Job.objects.filter(status="finished", modification_time__date=today).count()
    window = f"date_from={today}T00%3A00&date_to={today + timedelta(days=1)}T00%3A00"
    link = f"/jobs/?jobstatus=finished&{window}"
    assert link in links and jobs_total(link) == finished_today
    assert f"/users/?{window}" in links


@pytest.mark.parametrize(
    ("params", "message"),
    [({"days": "abc"}, "whole number"), ({"days": "91"}, "between 1 and 90"), ({"days": "0"}, "between 1 and 90"),
     ({"hours": "5"}, "unknown parameter hours")],
)  # fmt: skip
def test_usage_refuses_bad_parameters(params, message):
    response = Client().get("/summary/usage/", {**params, "json": ""})
    assert response.status_code == 400 and message in response.json()["error"]


def test_usage_on_an_empty_database_has_a_row_of_zeros_per_day():
    data = get_json("/summary/usage/", days=3)
    assert [row["finished"] for row in data["rows"]] == [0, 0, 0]
    assert data["totals"]["users"] == 0


def test_user_page_shows_datasets_used_and_the_kept_daily_statistics():
    from jobs.choices import FileType
    from quotas.models import DailyUsage

    from ..factories import JobFileFactory

    for n in range(3):
        job = JobFactory(owner=UserFactory(username="zoe"), status=JobStatus.FINISHED)
        JobFileFactory(job=job, type=FileType.INPUT, dataset="mc11.1.a.AOD.v1", lfn=f"in{n}.root")
        if n == 0:
            JobFileFactory(job=job, type=FileType.INPUT, dataset="mc11.2.b.AOD.v1", lfn="other.root")
    DailyUsage.objects.create(kind="user", name="zoe", day=timezone.now().date(), submitted=5, finished=3, failed=1,
                              cpu_seconds=5400)  # fmt: skip
    data = get_json("/users/zoe/")
    assert data["datasets_used"] == [
        {"name": "mc11.1.a.AOD.v1", "jobs": 3, "files": 3},
        {"name": "mc11.2.b.AOD.v1", "jobs": 1, "files": 1},
    ]
    [today] = data["daily"]
    assert (today["submitted"], today["success_pct"], today["cpu_hours"]) == (5, 75, 1.5)
    assert "75%" in Client().get("/users/zoe/").content.decode()

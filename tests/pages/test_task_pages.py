"""The task list and a task's page: the grammar, facets equal to direct counts, the JSON twin, the page's
sections and plots' data, and the kill / retry / reassign buttons with their permission rules."""

import html
import re
from collections import Counter
from datetime import timedelta
from urllib.parse import parse_qsl

import pytest
from django.test import Client
from django.utils import timezone

from datasets.models import Subscription
from datasets.services import catalog, system
from jobs.choices import JobStatus
from jobs.models import Job
from jobs.services import state
from pandamon import roles
from tasks.choices import InputStatus, TaskStatus, TaskType
from tasks.models import Task, TaskInput
from tasks.services import rollup
from tasks.services.creation import submit_task

from ..factories import SiteFactory, UserFactory, grant_role

pytestmark = pytest.mark.django_db
INPUT = "mc11.007216.singlepart_mu18.digit.v11000302"
RUN = (JobStatus.ACTIVATED, JobStatus.SENT, JobStatus.RUNNING)


# ---------------------------------------------------------------- helpers


def get(url, params=None, **kwargs):
    return Client().get(url, params or {}, **kwargs)


def get_json(url, params=None, client=None):
    """The JSON twin of `url` (its own query string kept) with `params`."""
    path, _, query = url.partition("?")
    response = (client or Client()).get(path, {**dict(parse_qsl(query)), **(params or {}), "json": ""})
    assert response.status_code == 200, response.content
    return response.json()


def hrefs(content):
    return [html.unescape(href) for href in re.findall(r'href="([^"]+)"', content)]


def walk(job, *states, **fields):
    """Move a job through `states`; `fields` go with the first step."""
    for new in states:
        state.transition(job, new, actor="test", **fields)
        fields = {}
    return job


def run_and_end(job, end, *, minutes, **errors):
    started = timezone.now() - timedelta(minutes=minutes + 5)
    walk(job, *RUN, start_time=started)
    if end == JobStatus.FINISHED:
        walk(job, JobStatus.HOLDING, JobStatus.FINISHED, end_time=started + timedelta(minutes=minutes))
    else:
        walk(job, end, end_time=started + timedelta(minutes=minutes), **errors)
    return job


def roll():
    rollup.roll_up(lag_seconds=0)


def jobs_of(task):
    return list(Job.objects.filter(task_id=task.task_id).order_by("pandaid"))


@pytest.fixture
def people(db):
    manager = grant_role(UserFactory(username="prodmgr"), roles.PRODUCTION_MANAGER)
    operator = grant_role(UserFactory(username="ddmops"), roles.DATA_OPERATOR)
    return {"alice": UserFactory(username="alice"), "bob": UserFactory(username="bob"), "manager": manager,
            "operator": operator}  # fmt: skip


@pytest.fixture
def inputs(people):
    files = [{"lfn": f"{INPUT}._{i:05d}.pool.root", "fsize": 1000 + i, "adler32": "0000abcd", "events": 100}
             for i in range(1, 7)]  # fmt: skip
    catalog.register_new_dataset(user=people["operator"], name=INPUT, files=files)
    return [f["lfn"] for f in files]


def analysis(user, name="reco.v1", **extra):
    spec = {"input_dataset": INPUT, "output_dataset": f"user.{user.username}.{name}", "transformation": "run.sh",
            "job_parameters": "${IN} ${OUT}", "n_files_per_job": 2, **extra}  # fmt: skip
    task, _ = submit_task(user=user, spec=spec, task_type=TaskType.ANALYSIS)
    return task


@pytest.fixture
def tasks(people, inputs):
    """alice's task running (a job finished, one failed with a pilot error, one running), bob's ready,
    a production task ready."""
    running = analysis(people["alice"])
    finished, failed, live = jobs_of(running)
    run_and_end(finished, JobStatus.FINISHED, minutes=25)
    run_and_end(failed, JobStatus.FAILED, minutes=3, pilot_error_code=1099, pilot_error_diag="stage-in failed")
    walk(live, *RUN, start_time=timezone.now())
    ready = analysis(people["bob"], n_files_per_job=3)
    spec = {"name": "mc11.007216.recon.v1", "input_dataset": INPUT, "output_dataset": "mc11.007216.recon.v1",
            "transformation": "csc.reco.trf", "n_events_per_job": 50, "project": "mc11"}  # fmt: skip
    production, _ = submit_task(user=people["manager"], spec=spec, task_type=TaskType.PRODUCTION)
    roll()
    for task in (running, ready, production):
        task.refresh_from_db()
    return {"running": running, "ready": ready, "production": production, "failed_job": failed,
            "finished_job": finished, "live_job": live}  # fmt: skip


# ---------------------------------------------------------------- the task list


def test_task_list_renders_with_data_and_empty(db):
    response = get("/tasks/")
    assert response.status_code == 200 and "No task matches." in response.content.decode()
    data = get_json("/tasks/")
    assert data["rows"] == [] and data["meta"]["total"] == 0


def test_task_list_shows_each_task_with_its_links(tasks):
    running = tasks["running"]
    assert running.status == TaskStatus.RUNNING and running.jobs_by_state == {"failed": 1, "finished": 1,
                                                                               "running": 1}  # fmt: skip
    page = get("/tasks/").content.decode()
    links = hrefs(page)
    for task in (tasks["running"], tasks["ready"], tasks["production"]):
        assert f"/tasks/{task.task_id}/" in links and task.name in page
    assert "/users/alice/" in links
    for job_state in ("failed", "finished", "running"):
        assert f"/jobs/?taskid={running.task_id}&jobstatus={job_state}" in links
    assert TaskStatus.RUNNING.label in page  # the state's meaning, as a tooltip
    assert 'href="/tasks/"' in page  # the header link


def test_task_list_json_twin_equals_the_html(tasks):
    data = get_json("/tasks/")
    page = get("/tasks/").content.decode()
    links = hrefs(page)
    assert [row["task_id"] for row in data["rows"]] == sorted((t.task_id for t in Task.objects.all()), reverse=True)
    assert f'<b class="total">{data["meta"]["total"]}</b>' in page
    for row in data["rows"]:
        assert row["url"] in links and row["owner_url"] in links
        assert all(chip["url"] in links for chip in row["jobs_by_state"])
        progress = row["progress"]
        assert f"{progress['done']} / {progress['total']}" in page
    row = next(row for row in data["rows"] if row["task_id"] == tasks["running"].task_id)
    assert row["progress"] == {"total": 6, "done": 2, "failed": 2, "remaining": 2, "done_pct": 33.3,
                               "failed_pct": 33.3}  # fmt: skip
    assert [chip["state"] for chip in row["jobs_by_state"]] == ["running", "finished", "failed"]
    assert row["status_help"] == TaskStatus.RUNNING.label


def test_task_list_facets_equal_direct_counts(tasks):
    data = get_json("/tasks/")
    since = timezone.now() - timedelta(days=7)
    window = Task.objects.filter(modified_at__gte=since)
    expected = {
        "status": Counter(window.values_list("status", flat=True)),
        "tasktype": Counter(window.values_list("type", flat=True)),
        "username": Counter(window.values_list("owner_name", flat=True)),
        "project": Counter(value or "Not specified" for value in window.values_list("project", flat=True)),
    }
    for name, counts in expected.items():
        assert {facet["value"]: facet["count"] for facet in data["facets"][name]} == counts, name
    assert data["meta"]["total"] == window.count() == 3
    # A facet value is a link adding its filter.
    assert "?status=running" in hrefs(get("/tasks/").content.decode())


def test_task_list_grammar_filters(tasks, people):
    def ids(**params):
        return {row["task_id"] for row in get_json("/tasks/", params)["rows"]}

    running, ready, production = tasks["running"], tasks["ready"], tasks["production"]
    assert ids(status="running") == {running.task_id}
    assert ids(status="!running") == {ready.task_id, production.task_id}
    assert ids(username="bob|prodmgr") == {ready.task_id, production.task_id}
    assert ids(taskname="user.*") == {running.task_id, ready.task_id}
    assert ids(tasktype="production") == {production.task_id}
    assert ids(project="Not specified") == {running.task_id, ready.task_id}
    assert ids(taskid=f"{running.task_id}:{ready.task_id}") == {running.task_id, ready.task_id}
    Task.objects.filter(pk=ready.pk).update(modified_at=timezone.now() - timedelta(days=10))
    assert ready.task_id not in ids()  # outside the default window of 7 days
    assert ready.task_id in ids(days=30)
    assert ids(taskid=str(ready.task_id)) == {ready.task_id}  # an id lifts the window
    data = get_json("/tasks/", {"limit": 1})
    assert len(data["rows"]) == 1 and data["meta"]["next"]
    following = get_json("/tasks/" + data["meta"]["next"])
    assert following["rows"][0]["task_id"] < data["rows"][0]["task_id"]
    client = Client()
    client.force_login(people["bob"])
    assert {row["task_id"] for row in get_json("/tasks/", {"mine": "1"}, client=client)["rows"]} == {ready.task_id}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"staus": "running"}, "unknown parameter staus"),
        ({"status": "runing"}, "is not one of"),
        ({"taskid": "abc"}, "not an integer"),
        ({"sortby": "colour"}, "sortby must be one of"),
        ({"mine": "1"}, "log in"),
    ],
)
def test_task_list_refuses_bad_parameters(db, params, message):
    response = get("/tasks/", params)
    assert response.status_code in (400, 403) and message in html.unescape(response.content.decode())
    response = get("/tasks/", {**params, "json": ""})
    assert response.status_code in (400, 403) and message in response.json()["error"]


# ---------------------------------------------------------------- one task


def test_task_page_shows_its_counters_jobs_inputs_and_history(tasks):
    task = tasks["running"]
    response = get(f"/tasks/{task.task_id}/")
    assert response.status_code == 200
    page = response.content.decode()
    links = hrefs(page)
    data = get_json(f"/tasks/{task.task_id}/")
    assert data["progress"] == {"total": 6, "done": 2, "failed": 2, "remaining": 2, "done_pct": 33.3,
                                "failed_pct": 33.3}  # fmt: skip
    assert "<b>2</b> done (33.3%), <b>2</b> failed (33.3%), 2 to do, of 6" in page
    assert data["task"]["status_help"] == TaskStatus.RUNNING.label and TaskStatus.RUNNING.label in page
    # Jobs by state: each count links to the job list of the task and state, which agrees with it.
    for chip in data["jobs_by_state"]:
        assert chip["url"] in links
        assert get_json(chip["url"])["meta"]["total"] == chip["count"] == 1
    assert data["jobs_url"] in links
    # Its input pieces and the job holding each.
    assert data["inputs"]["counts"] == {"pending": 0, "assigned": 2, "done": 2, "failed": 2}
    pieces = {row["lfn"]: row for row in data["inputs"]["rows"]}
    assert set(pieces) == set(TaskInput.objects.filter(task=task).values_list("lfn", flat=True))
    failed_job = tasks["failed_job"]
    assert {lfn for lfn, row in pieces.items() if row["job_id"] == failed_job.pandaid} == set(
        TaskInput.objects.filter(task=task, status=InputStatus.FAILED).values_list("lfn", flat=True)
    )
    assert all(row["job_status"] == Job.objects.get(pk=row["job_id"]).status for row in pieces.values())
    assert f"/jobs/{failed_job.pandaid}/" in links and f"/api/v1/tasks/{task.task_id}/inputs/" in links
    assert f"/datasets/{INPUT}/" in links and f"/datasets/{task.output_dataset}/" in links
    assert "/users/alice/" in links
    # Status history, oldest first, and the jobset.
    assert [h["new_status"] for h in data["history"]] == ["defined", "ready", "running"]
    assert data["jobsets"]["total"] == 1 and data["jobsets"]["rows"][0]["n_jobs"] == 3
    assert f"/jobs/?jobsetid={data['jobsets']['rows'][0]['jobset_id']}" in links


def test_task_page_plots_data(tasks):
    task = tasks["running"]
    data = get_json(f"/tasks/{task.task_id}/")
    durations = data["plots"]["durations"]
    assert durations["total"] == 2 and set(durations["series"]) == {"finished", "failed"}
    buckets = durations["buckets"]
    assert buckets[durations["series"]["finished"].index(1)] == "20–30 min"
    assert buckets[durations["series"]["failed"].index(1)] == "2–5 min"
    failures = data["plots"]["failures"]
    assert [(f["component"], f["code"], f["count"]) for f in failures["by_code"]] == [("pilot", 1099, 1)]
    assert failures["by_code"][0]["example_pandaid"] == tasks["failed_job"].pandaid
    assert failures["over_time"]["total"] == 1 and sum(failures["over_time"]["series"]["pilot:1099"]) == 1
    page = get(f"/tasks/{task.task_id}/").content.decode()
    assert 'data-figure="figure-durations"' in page and 'id="figure-failures"' in page
    assert "plotly.min.js" in page and "stage-in failed" in page


def test_task_page_output_datasets_with_their_archival(tasks):
    task, site = tasks["running"], SiteFactory(name="BNL", tier=1)
    sub = system.destination_dataset(task.output_dataset, f"{task.output_dataset}_sub0001")
    Subscription.objects.create(dataset=sub, site=site, owner_name="panda", activity="archival")
    outputs = get_json(f"/tasks/{task.task_id}/")["outputs"]
    assert outputs["container"] == {"name": task.output_dataset, "kind": "container", "state": "open"}
    assert outputs["members"] == [{"name": sub.name, "kind": "dataset", "state": "open", "n_files": 0, "bytes": 0,
                                   "archived_at": None,
                                   "archival": {"site": "BNL", "subscription": "active", "files_there": 0}}]  # fmt: skip
    assert f"/datasets/{sub.name}/" in hrefs(get(f"/tasks/{task.task_id}/").content.decode())


def test_task_page_input_filter_and_refusals(tasks):
    task = tasks["running"]
    data = get_json(f"/tasks/{task.task_id}/", {"inputstatus": "failed"})
    assert data["inputs"]["status"] == "failed" and {row["status"] for row in data["inputs"]["rows"]} == {"failed"}
    assert len(data["inputs"]["rows"]) == 2
    assert get(f"/tasks/{task.task_id}/", {"inputstatus": "lost"}).status_code == 400
    response = get(f"/tasks/{task.task_id}/", {"colour": "red", "json": ""})
    assert response.status_code == 400 and "unknown parameter colour" in response.json()["error"]
    assert get("/tasks/999999/").status_code == 404
    assert get("/tasks/999999/", {"json": ""}).json() == {"error": "no task 999999"}


def test_the_job_page_links_to_its_task(tasks):
    job = tasks["failed_job"]
    assert f"/tasks/{job.task_id}/" in hrefs(get(f"/jobs/{job.pandaid}/").content.decode())


def test_a_task_id_without_a_task_opens_its_jobs(db):
    from ..factories import JobFactory

    JobFactory(task_id=4242)
    response = get("/tasks/4242/")
    assert response.status_code == 302 and response["Location"] == "/jobs/?taskid=4242"


# ---------------------------------------------------------------- actions


def logged_in(user):
    client = Client()
    client.force_login(user)
    return client


def test_buttons_only_for_who_may_manage_the_task(tasks, people):
    task = tasks["running"]
    url = f"/tasks/{task.task_id}/"
    assert "Kill task" in logged_in(people["alice"]).get(url).content.decode()
    assert "Retry failed jobs" in logged_in(people["alice"]).get(url).content.decode()
    for client in (Client(), logged_in(people["bob"]), logged_in(people["manager"])):
        page = client.get(url).content.decode()
        assert "Kill task" not in page and "Retry failed jobs" not in page
    production = f"/tasks/{tasks['production'].task_id}/"
    assert "Kill task" in logged_in(people["manager"]).get(production).content.decode()
    assert get_json(url, client=logged_in(people["alice"]))["actions"] == ["kill", "retry", "pause"]


def test_the_owner_kills_their_task(tasks, people):
    task = tasks["ready"]
    client = logged_in(people["bob"])
    response = client.post(f"/tasks/{task.task_id}/kill/", {"reason": "wrong input"})
    assert response.status_code == 302 and response["Location"] == f"/tasks/{task.task_id}/"
    task.refresh_from_db()
    assert task.status == TaskStatus.ABORTED and "wrong input" in task.status_reason
    assert {job.status for job in jobs_of(task)} == {JobStatus.CANCELLED}
    page = client.get(response["Location"]).content.decode()
    assert f"task {task.task_id} aborted: 2 queued job(s) cancelled" in page  # the message after the redirect
    assert "Kill task" not in page  # an aborted task cannot be killed again


def test_a_running_task_killed_tells_its_running_jobs_to_stop(tasks, people):
    task = tasks["running"]
    response = logged_in(people["alice"]).post(f"/tasks/{task.task_id}/kill/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response.json()["kill_command_sent"] == 1 and response.json()["status"] == "aborted"
    live = Job.objects.get(pk=tasks["live_job"].pandaid)
    assert live.command_to_pilot == "tobekilled"


def test_another_user_is_refused_and_nothing_changes(tasks, people):
    task = tasks["ready"]
    before = [(job.pandaid, job.status) for job in jobs_of(task)]
    response = logged_in(people["alice"]).post(f"/tasks/{task.task_id}/kill/")
    assert response.status_code == 403
    page = response.content.decode()
    assert "Refused: you may not kill task" in page and "only its owner or an admin may" in page
    response = logged_in(people["alice"]).post(f"/tasks/{task.task_id}/retry/", HTTP_ACCEPT="application/json")
    assert response.status_code == 403 and "you may not retry" in response.json()["error"]
    assert Client().post(f"/tasks/{task.task_id}/kill/").status_code == 403  # anonymous
    task.refresh_from_db()
    assert task.status == TaskStatus.READY
    assert [(job.pandaid, job.status) for job in jobs_of(task)] == before
    # Bad requests: a GET, an unknown task, a bad option.
    assert logged_in(people["bob"]).get(f"/tasks/{task.task_id}/kill/").status_code == 405
    assert logged_in(people["bob"]).post("/tasks/999999/kill/").status_code == 404
    response = logged_in(people["bob"]).post(f"/tasks/{task.task_id}/retry/", {"also": "everything"})
    assert response.status_code == 400 and "also must be" in response.content.decode()


def test_retry_of_failed_jobs_makes_new_attempts(tasks, people):
    task, failed = tasks["running"], tasks["failed_job"]
    client = logged_in(people["alice"])
    response = client.post(f"/tasks/{task.task_id}/retry/")
    assert response.status_code == 302
    child = Job.objects.get(parent_id=failed.pandaid)
    assert child.task_id == task.task_id and child.attempt_nr == failed.attempt_nr + 1
    assert "1 failed job(s) of task" in client.get(response["Location"]).content.decode()
    roll()
    data = get_json(f"/tasks/{task.task_id}/")
    failed_pieces = {row["lfn"] for row in data["inputs"]["rows"] if row["job_id"] == failed.pandaid}
    assert failed_pieces == set()  # the new attempt holds them now
    assert {row["status"] for row in data["inputs"]["rows"] if row["job_id"] == child.pandaid} == {"assigned"}
    assert data["inputs"]["counts"]["failed"] == 0
    assert get_json(f"/tasks/{task.task_id}/", client=client)["actions"] == [
        "kill",
        "pause",
    ]  # no failed job without a retry
    # Nothing left to retry: said, not an error.
    response = client.post(f"/tasks/{task.task_id}/retry/")
    assert "nothing to retry" in client.get(response["Location"]).content.decode()


def test_reassign_queued_jobs(tasks, people):
    task, site = tasks["ready"], SiteFactory(name="MWT2")
    jobs = jobs_of(task)
    client = logged_in(people["bob"])
    assert "reassign" not in get_json(f"/tasks/{task.task_id}/", client=client)["actions"]  # none is at a site
    walk(jobs[0], JobStatus.ASSIGNED, computing_site=site)
    assert "Reassign queued jobs" in client.get(f"/tasks/{task.task_id}/").content.decode()
    response = logged_in(people["bob"]).post(f"/tasks/{task.task_id}/reassign/", {"exclude_site": "MWT2"},
                                             HTTP_ACCEPT="application/json")  # fmt: skip
    assert response.status_code == 200 and response.json()["reassigned"] == 1
    assert Job.objects.get(pk=jobs[0].pandaid).status == JobStatus.CLOSED
    task.refresh_from_db()
    assert task.excluded_sites == ["MWT2"]
    response = logged_in(people["bob"]).post(f"/tasks/{task.task_id}/reassign/", {"exclude_site": "NOWHERE"})
    assert response.status_code == 404 and "no site named NOWHERE" in response.content.decode()

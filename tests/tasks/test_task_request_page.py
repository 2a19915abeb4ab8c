"""The production task request page (/tasks/request/): production managers only, the same service as the API."""

import pytest
from django.test import Client

from datasets.services import catalog
from jobs.models import Job
from pandamon import roles
from tasks.models import Task
from tests.factories import UserFactory, grant_role

pytestmark = pytest.mark.django_db
INPUT = "mc11.007216.singlepart_mu18.digit.v11000302"
FORM = {
    "name": "mc11.007216.singlepart_mu18.recon.v11000303", "project": "mc11", "input_dataset": INPUT,
    "output_formats": "ESD.AOD", "transformation": "csc.reco.trf", "trf_version": "11.0.42.1",
    "sw_release": "11.0.42", "job_parameters": "${IN} ${OUT} skip=${SKIPEVENTS} max=${MAXEVENTS}",
    "events_per_file": "250", "cpu_per_event": "12", "ram_mb": "1200", "priority": "1500", "max_attempts": "3",
    "splitting": "n_events_per_job", "per_job": "100",
}  # fmt: skip


@pytest.fixture
def manager(db):
    operator = grant_role(UserFactory(username="ddmops"), roles.DATA_OPERATOR)
    files = [{"lfn": f"{INPUT}._{i:05d}.pool.root", "fsize": 1000, "adler32": "0000abcd"} for i in (1, 2)]
    catalog.register_new_dataset(user=operator, name=INPUT, files=files)
    return grant_role(UserFactory(username="prodmgr"), roles.PRODUCTION_MANAGER)


def logged_in(user):
    client = Client()
    client.force_login(user)
    return client


def test_a_production_manager_defines_a_task_and_lands_on_its_page(manager):
    client = logged_in(manager)
    page = client.get("/tasks/request/")
    assert page.status_code == 200 and b"Production task request" in page.content
    response = client.post("/tasks/request/", FORM)
    task = Task.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/tasks/{task.pk}/"
    assert (task.type, task.output_dataset, task.output_formats, task.sw_release) == (
        "production", FORM["name"], "ESD.AOD", "11.0.42")  # fmt: skip
    assert (task.n_events_per_job, task.events_per_file, task.cpu_per_event, task.ram_mb, task.priority) == (
        100, 250, 12, 1200, 1500)  # fmt: skip
    assert Job.objects.filter(task_id=task.pk).count() == 6  # 2 files x 250 events / 100 per job
    again = client.post("/tasks/request/", FORM)
    assert again.status_code == 409 and b"a task named" in again.content and Task.objects.count() == 1


def test_size_rule_in_gb(manager):
    response = logged_in(manager).post("/tasks/request/", {**FORM, "splitting": "max_size_per_job_gb", "per_job": "2"})
    assert response.status_code == 302
    assert Task.objects.get().max_size_per_job_mb == 2048


@pytest.mark.parametrize("who", ["anonymous", "alice"])
def test_others_see_a_clear_refusal(manager, who):
    client = Client() if who == "anonymous" else logged_in(UserFactory(username="alice"))
    for response in (client.get("/tasks/request/"), client.post("/tasks/request/", FORM)):
        assert response.status_code == 403
        assert b"production manager" in response.content or b"production_manager role" in response.content
    assert not Task.objects.exists()


def test_bad_input_is_shown_on_the_form_and_changes_nothing(manager):
    client = logged_in(manager)
    response = client.post("/tasks/request/", {**FORM, "job_parameters": "${IN} ${NOPE}"})
    assert response.status_code == 400 and b"unknown placeholder ${NOPE}" in response.content
    assert b'value="mc11.007216.singlepart_mu18.recon.v11000303"' in response.content  # the input is kept
    response = client.post("/tasks/request/", {**FORM, "per_job": "0", "output_formats": "ESD AOD"})
    assert response.status_code == 400 and response.content.count(b'class="error"') == 2
    response = client.post("/tasks/request/", {**FORM, "input_dataset": "mc11.nothing"})
    assert response.status_code == 404 and b"no dataset named mc11.nothing" in response.content
    assert not Task.objects.exists() and not Job.objects.exists()

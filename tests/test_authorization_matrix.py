"""Who may write what: every role against every write endpoint, on their own and on others' objects.

Each cell is a real request through the API (token auth) or the portal (session + CSRF token);
an allowed write succeeds, a refused one is a 401/403 whose message names the missing role or
the owner, and changes nothing."""

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from datasets.models import Dataset, Subscription
from datasets.services import catalog, subscriptions
from jobs.choices import JobStatus
from jobs.models import Job
from pandamon import roles

from .factories import JobFactory, SiteFactory, UserFactory, grant_role

pytestmark = pytest.mark.django_db

ACTORS = ["anonymous", "alice", "bob", "production_manager", "data_operator", "shifter", "admin"]


@pytest.fixture
def people():
    made = {"alice": UserFactory(username="alice"), "bob": UserFactory(username="bob")}
    for role in (roles.PRODUCTION_MANAGER, roles.DATA_OPERATOR, roles.SHIFTER):
        made[role] = grant_role(UserFactory(username=f"the_{role}"), role)
    made["admin"] = UserFactory(username="root", is_staff=True, is_superuser=True)
    return made


def api_as(people, actor):
    client = APIClient()
    if actor != "anonymous":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {Token.objects.create(user=people[actor]).key}")
    return client


def alices_job(people, status=JobStatus.ACTIVATED, label="user"):
    return JobFactory(owner=people["alice"], status=status, prod_source_label=label)


def alices_dataset(people, name="user.alice.data1"):
    [dataset] = catalog.register_new_datasets(user=people["alice"], specs=[{"name": name}])
    return dataset


def submit_user_job(client, people):
    return client.post("/api/v1/jobs/", [{"job_name": "a", "transformation": "/bin/true"}], format="json")


def submit_managed_job(client, people):
    spec = {"job_name": "p", "transformation": "/bin/true", "prod_source_label": "managed"}
    return client.post("/api/v1/jobs/", [spec], format="json")


def kill_alices_job(client, people):
    return client.post("/api/v1/jobs/kill/", {"pandaids": [alices_job(people).pk]}, format="json")


def kill_a_production_job(client, people):
    job = JobFactory(owner=people["production_manager"], prod_source_label="managed", status=JobStatus.ACTIVATED)
    return client.post("/api/v1/jobs/kill/", {"pandaids": [job.pk]}, format="json")


def retry_alices_job(client, people):
    return client.post(f"/api/v1/jobs/{alices_job(people, status=JobStatus.FAILED).pk}/retry/")


def create_alices_user_dataset(client, people):
    return client.post("/api/v1/datasets/", {"datasets": [{"name": "user.alice.new1"}]}, format="json")


def create_official_dataset(client, people):
    return client.post(
        "/api/v1/datasets/", {"datasets": [{"name": "mc11_7TeV.105200.T1.evgen.EVNT.e835"}]}, format="json"
    )


def close_alices_dataset(client, people):
    return client.post(f"/api/v1/datasets/{alices_dataset(people).name}/close/")


def erase_alices_dataset(client, people):
    return client.delete(f"/api/v1/datasets/{alices_dataset(people).name}/")


def storage_site():
    return SiteFactory(name="MWT2", storage_endpoint="/nonexistent/se/MWT2")


def alices_subscription(people):
    dataset = alices_dataset(people)
    site = storage_site()
    return subscriptions.create_subscription(user=people["alice"], name=dataset.name, site_name=site.name)


def subscribe_alices_dataset(client, people):
    body = {"dataset": alices_dataset(people).name, "site": storage_site().name}
    return client.post("/api/v1/subscriptions/", body, format="json")


def subscribe_official_dataset(client, people):
    [dataset] = catalog.register_new_datasets(
        user=people["admin"], specs=[{"name": "mc11_7TeV.105200.T1.evgen.EVNT.e835"}]
    )
    body = {"dataset": dataset.name, "site": storage_site().name, "activity": "production"}
    return client.post("/api/v1/subscriptions/", body, format="json")


def suspend_alices_subscription(client, people):
    return client.post(f"/api/v1/subscriptions/{alices_subscription(people).pk}/suspend/", {}, format="json")


def resume_alices_subscription(client, people):
    return client.post(f"/api/v1/subscriptions/{alices_subscription(people).pk}/resume/")


def delete_alices_subscription(client, people):
    return client.delete(f"/api/v1/subscriptions/{alices_subscription(people).pk}/")


def register_a_callback(client, people):
    body = {"dataset": alices_dataset(people).name, "site": storage_site().name, "url": "https://example.org/h"}
    return client.post("/api/v1/callbacks/", body, format="json")


ALLOWED = {
    submit_user_job: {"alice", "bob", "production_manager", "data_operator", "shifter", "admin"},
    submit_managed_job: {"production_manager", "admin"},
    kill_alices_job: {"alice", "shifter", "admin"},
    kill_a_production_job: {"production_manager", "shifter", "admin"},
    retry_alices_job: {"alice", "shifter", "admin"},
    create_alices_user_dataset: {"alice", "data_operator", "admin"},
    create_official_dataset: {"production_manager", "data_operator", "admin"},
    close_alices_dataset: {"alice", "data_operator", "admin"},
    erase_alices_dataset: {"alice", "data_operator", "admin"},
    # Production managers may subscribe any dataset (datasets.services.subscriptions._check_may_subscribe).
    subscribe_alices_dataset: {"alice", "production_manager", "data_operator", "admin"},
    subscribe_official_dataset: {"production_manager", "data_operator", "admin"},
    suspend_alices_subscription: {"alice", "data_operator", "admin"},
    resume_alices_subscription: {"alice", "data_operator", "admin"},
    delete_alices_subscription: {"alice", "data_operator", "admin"},
    register_a_callback: {"alice", "bob", "production_manager", "data_operator", "shifter", "admin"},
}
# What a refusal must name: the role that is missing, or whose object it is.
REFUSAL_NAMES = {
    submit_managed_job: "production_manager role",
    kill_alices_job: "only the owner",
    kill_a_production_job: "only the owner",
    retry_alices_job: "only its owner",
    create_alices_user_dataset: "belongs to user 'alice'",
    create_official_dataset: "needs the production_manager or data_operator role",
    close_alices_dataset: "belongs to user 'alice'",
    erase_alices_dataset: "belongs to user 'alice'",
    subscribe_alices_dataset: "belongs to user 'alice'",
    subscribe_official_dataset: "needs the production_manager or data_operator role",
    suspend_alices_subscription: "belongs to alice; only they or a data operator",
    resume_alices_subscription: "belongs to alice; only they or a data operator",
    delete_alices_subscription: "belongs to alice; only they or a data operator",
}


def snapshot():
    return (
        sorted(Job.objects.values_list("pandaid", "status", "command_to_pilot")),
        sorted(Dataset.objects.values_list("name", "state", "erased_at")),
        sorted(Subscription.objects.values_list("pk", "state", "reason")),
    )


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("write", list(ALLOWED), ids=lambda write: write.__name__)
def test_authorization_matrix(people, write, actor):
    client = api_as(people, actor)
    response = write(client, people)
    if actor in ALLOWED[write]:
        assert response.status_code in (200, 201, 204), (actor, response.content)
        return
    if actor == "anonymous":
        assert response.status_code in (401, 403)
        return
    assert response.status_code == 403, (actor, response.content)
    assert REFUSAL_NAMES[write] in response.json()["error"]


@pytest.mark.parametrize("actor", ["bob", "production_manager", "data_operator"])
def test_a_refused_write_changes_nothing(people, actor):
    job, subscription = alices_job(people), alices_subscription(people)
    dataset = subscription.dataset
    before = snapshot()
    client = api_as(people, actor)
    client.post("/api/v1/jobs/kill/", {"pandaids": [job.pk]}, format="json")
    if actor != "data_operator":
        client.post(f"/api/v1/datasets/{dataset.name}/close/")
        client.post(f"/api/v1/subscriptions/{subscription.pk}/suspend/", {}, format="json")
        client.delete(f"/api/v1/subscriptions/{subscription.pk}/")
    assert snapshot() == before


@pytest.mark.parametrize("actor", ACTORS)
def test_portal_kill_button_follows_the_same_rule(people, actor):
    job = alices_job(people)
    client = Client()
    if actor != "anonymous":
        client.force_login(people[actor])
    response = client.post(f"/jobs/{job.pk}/kill/")
    job.refresh_from_db()
    if actor in ALLOWED[kill_alices_job]:
        assert response.status_code == 302 and job.status == JobStatus.CANCELLED
    else:
        assert response.status_code == 403 and job.status == JobStatus.ACTIVATED

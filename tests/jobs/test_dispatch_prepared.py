"""getJob's dispatch statement is PREPAREd once per database connection (jobs/services/dispatch_sql.py).

What must hold: a new connection prepares it again, a rolled-back transaction does not lose it,
and the generic plan it runs with still applies the pilot's filters.
"""

import pytest
from django.db import connection, transaction
from django.test import Client

from jobs.choices import JobStatus
from jobs.models import Job

from ..factories import JobFactory

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="the prepared statement is PostgreSQL's")


@pytest.fixture(autouse=True)
def prepared_dispatch(settings):
    settings.PANDA = {**settings.PANDA, "DISPATCH_SINGLE_STATEMENT": True, "DISPATCH_PREPARED": True}


def get_job(site, token, **params):
    response = Client().post(
        "/server/panda/getJob",
        {"siteName": site.name, "node": "wn1", **params},
        HTTP_ACCEPT="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 200, response.content
    return response.json()


def prepared_statements():
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        return {row[0] for row in cursor.fetchall()}


@pytest.mark.django_db(transaction=True)
def test_a_new_connection_prepares_the_statement_again(site, pilot_token):
    first, second = (JobFactory(computing_site=site, status=JobStatus.ACTIVATED) for _ in range(2))

    assert get_job(site, pilot_token)["PandaID"] in {first.pk, second.pk}
    assert "pandamon_dispatch_jobs" in prepared_statements()
    connection.close()  # the server lost its connection (restart, failover): the next call reconnects

    assert get_job(site, pilot_token)["PandaID"] in {first.pk, second.pk}
    assert Job.objects.filter(status=JobStatus.SENT).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_keeps_the_prepared_statement(site, pilot_token):
    job = JobFactory(computing_site=site, status=JobStatus.ACTIVATED)
    connection.close()  # a fresh connection: the PREPARE happens inside the transaction below
    with transaction.atomic():
        assert get_job(site, pilot_token)["PandaID"] == job.pk
        transaction.set_rollback(True)  # e.g. a caller's transaction that failed after getJob's statement

    job.refresh_from_db()
    assert job.status == JobStatus.ACTIVATED
    assert get_job(site, pilot_token)["PandaID"] == job.pk


@pytest.mark.django_db
def test_the_generic_plan_applies_each_call_its_own_filters(site, pilot_token):
    big = JobFactory(computing_site=site, status=JobStatus.ACTIVATED, min_ram_count=8000, current_priority=50)
    small = JobFactory(computing_site=site, status=JobStatus.ACTIVATED, min_ram_count=1000, current_priority=10)

    # One plan for every call: the memory bound of the first call must not stick to the next.
    assert get_job(site, pilot_token, mem=2000)["PandaID"] == small.pk
    assert get_job(site, pilot_token, mem=2000)["StatusCode"] == 20
    assert get_job(site, pilot_token)["PandaID"] == big.pk

"""A site's stored files and bytes count each file once, however many datasets hold it, and follow
every way replicas come and go (registration, deletion of a dataset replica, reaping, purge)."""

import pytest
from django.apps import apps
from django.test import Client
from django.utils import timezone

from datasets import dashboard_selectors
from datasets.models import DatasetReplica, SiteReplicaTotals
from datasets.services import catalog, replicas

from ..factories import SiteFactory, UserFactory, grant_role

pytestmark = pytest.mark.django_db
AOD, COPY = "mc11.1.a.recon.AOD.v1", "mc11.1.a.recon.AOD.v1_copy"


@pytest.fixture
def operator(db):
    user = UserFactory(username="ddmop")
    grant_role(user, "data_operator")
    return user


def files(prefix, n, size):
    return [{"lfn": f"{prefix}._{i:05d}.root", "fsize": size, "adler32": f"{i:08x}"} for i in range(n)]


def totals(site):
    row = SiteReplicaTotals.objects.filter(site=site).first()
    return (row.files, row.bytes) if row else (0, 0)


def test_a_file_in_two_datasets_is_stored_once(operator):
    site = SiteFactory(name="BNL", storage_endpoint="/data/bnl")
    shared, own = files("shared", 3, 1000), files("own", 1, 500)
    catalog.register_new_dataset(user=operator, name=AOD, files=shared + own)
    catalog.register_new_dataset(user=operator, name=COPY, files=shared)
    assert replicas.register_file_replicas(user=operator, site_name="BNL", replicas=shared + own) == 4
    assert replicas.register_file_replicas(user=operator, site_name="BNL", replicas=shared) == 0  # known ones

    assert sum(DatasetReplica.objects.values_list("bytes_present", flat=True)) == 6500  # each dataset counts them
    assert totals(site) == (4, 3500)
    page = Client().get("/sites/BNL/", {"json": ""}).json()
    assert page["storage_bytes"] == 3500
    listing = Client().get("/sites/", {"json": ""}).json()
    assert next(row for row in listing["rows"] if row["name"] == "BNL")["storage_bytes"] == 3500
    row = next(r for r in dashboard_selectors.volume()["rows"] if r["cloud"] == site.cloud.name)
    assert (row["replicas"], row["files"], row["bytes"]) == (2, 4, 3500)

    # The copy's replica goes: its files stay, as the AOD's replica holds them.
    assert replicas.delete_dataset_replica(user=operator, name=COPY, site_name="BNL") == 0
    assert totals(site) == (4, 3500)
    assert replicas.delete_dataset_replica(user=operator, name=AOD, site_name="BNL") == 4
    assert totals(site) == (0, 0)


def test_purge_takes_the_files_off_the_totals(operator):
    site = SiteFactory(name="BNL", storage_endpoint="/data/bnl")
    catalog.register_new_dataset(user=operator, name=AOD, files=files("gone", 2, 700))
    replicas.register_file_replicas(user=operator, site_name="BNL", replicas=files("gone", 2, 700))
    catalog.erase_dataset(user=operator, name=AOD)
    catalog.purge_erased_datasets(now=timezone.now() + catalog.ERASE_GRACE * 2)
    assert totals(site) == (0, 0)


def test_the_migration_counts_the_replicas_already_there(operator):
    from importlib import import_module

    site = SiteFactory(name="BNL", storage_endpoint="/data/bnl")
    shared = files("shared", 2, 1000)
    catalog.register_new_dataset(user=operator, name=AOD, files=shared)
    catalog.register_new_dataset(user=operator, name=COPY, files=shared)
    replicas.register_file_replicas(user=operator, site_name="BNL", replicas=shared)
    SiteReplicaTotals.objects.all().delete()  # as before the migration

    import_module("datasets.migrations.0008_site_replica_totals").count_existing_replicas(apps, None)
    assert totals(site) == (2, 2000)


def test_a_recount_repairs_totals_that_drifted(operator):
    from io import StringIO

    from django.core.management import CommandError, call_command

    site, other = SiteFactory(name="BNL", storage_endpoint="/data/bnl"), SiteFactory(name="CERN")
    catalog.register_new_dataset(user=operator, name=AOD, files=files("f", 2, 1000))
    replicas.register_file_replicas(user=operator, site_name="BNL", replicas=files("f", 2, 1000))
    SiteReplicaTotals.objects.filter(site=site).update(files=7, bytes=1)  # as after a raw SQL insert
    SiteReplicaTotals.objects.create(site=other, files=3, bytes=3)

    out = StringIO()
    call_command("recount_site_storage", "BNL", stdout=out)
    assert out.getvalue().splitlines() == ["BNL: 7 files, 1 bytes -> 2 files, 2,000 bytes", "1 site(s) corrected"]
    assert totals(site) == (2, 2000) and totals(other) == (3, 3), "only the site asked for"
    assert replicas.recount_site_totals() == [("CERN", (3, 3), (0, 0))]
    assert replicas.recount_site_totals() == []
    with pytest.raises(CommandError, match="no site named NOWHERE"):
        call_command("recount_site_storage", "NOWHERE")

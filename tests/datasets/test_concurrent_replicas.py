"""Completeness stays exact when many clients register overlapping replicas at once."""

import threading

import pytest
from django.db import connection

from datasets.models import DatasetReplica, FileReplica
from datasets.services import catalog, replicas

from ..factories import SiteFactory, UserFactory, grant_role

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]
N_FILES = 400
N_CLIENTS = 12


def test_overlapping_concurrent_registrations_count_each_replica_once():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL")
    operator = UserFactory(username="ddmop")
    grant_role(operator, "data_operator")
    SiteFactory(name="BNL", storage_endpoint="/se/bnl")
    SiteFactory(name="CERN", storage_endpoint="/se/cern")
    specs = [{"lfn": f"conc.{i:05d}.root", "fsize": 10 + i, "adler32": f"{i:08x}"} for i in range(N_FILES)]
    catalog.register_new_dataset(user=operator, name="mc11.1.conc.recon.AOD.v1", files=specs)
    catalog.register_new_dataset(user=operator, name="mc11.1.conc.merge.AOD.v1", files=specs[::2])
    errors = []

    def client(index):
        try:
            # Each client registers an overlapping half of the files, in its own order, at both sites.
            chosen = specs[index * 20 : index * 20 + N_FILES // 2] + specs[: index * 10]
            for site in ("BNL", "CERN")[:: 1 if index % 2 else -1]:
                replicas.register_file_replicas(
                    user=operator, site_name=site, replicas=[{"lfn": s["lfn"]} for s in chosen]
                )
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(N_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    for site in ("BNL", "CERN"):
        present = set(FileReplica.objects.filter(site__name=site).values_list("file__lfn", flat=True))
        for name, members in (("mc11.1.conc.recon.AOD.v1", specs), ("mc11.1.conc.merge.AOD.v1", specs[::2])):
            expected = [s for s in members if s["lfn"] in present]
            replica = DatasetReplica.objects.get(dataset__name=name, site__name=site)
            assert (replica.files_present, replica.bytes_present) == (len(expected), sum(s["fsize"] for s in expected))

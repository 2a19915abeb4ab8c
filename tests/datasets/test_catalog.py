import uuid

import pytest

from datasets import selectors
from datasets.choices import DatasetKind, DatasetState
from datasets.models import Dataset, DatasetFile, DatasetReplica, File, FileReplica
from datasets.naming import parse
from datasets.services import catalog, containers, replicas
from pandamon.errors import Conflict, InvalidInput, NotFound, PermissionDenied

from ..factories import SiteFactory, UserFactory, grant_role

pytestmark = pytest.mark.django_db


def files(prefix, n, size=100):
    return [{"lfn": f"{prefix}._{i:05d}.pool.root.1", "fsize": size, "adler32": f"{i:08x}"} for i in range(n)]


@pytest.fixture
def operator(db):
    user = UserFactory(username="ddmop")
    grant_role(user, "data_operator")
    return user


def test_names_are_parsed_into_fields_and_categories():
    parsed = parse("mc11.007216.singlepart_mu18.recon.AOD.v11000303")
    assert parsed.fields() == {"series": "mc11", "number": "007216", "physics": "singlepart_mu18", "stage": "recon",
                               "format": "AOD", "release": "v11000303", "category": "mc"}  # fmt: skip
    assert parse("user.alice.test.001").category == "user" and parse("user.alice.test.001").user == "alice"
    assert parse("csc11.005001.pythia.evgen.EVNT.v11004103").category == "csc"
    assert parse("panda.1234.11.27.GEN.abcd_dis000042").category == "dispatch"
    assert parse("mc11.007216.singlepart_mu18.recon.AOD.v11000303_sub12").category == "destination"
    assert parse("somethingelse.x").category == "other"


def test_register_a_dataset_with_files_and_list_them(operator):
    dataset = catalog.register_new_dataset(
        user=operator, name="mc11.007216.singlepart_mu18.recon.AOD.v11000303", files=files("mc11.a", 3)
    )
    assert (dataset.state, dataset.latest_version, dataset.n_files, dataset.bytes) == (DatasetState.OPEN, 1, 3, 300)
    assert (dataset.category, dataset.format) == ("mc", "AOD")
    listed = [row.file.lfn for row in selectors.files_in_dataset(dataset=dataset)]
    assert listed == sorted(f["lfn"] for f in files("mc11.a", 3))
    assert File.objects.get(lfn=listed[0]).origin_dataset == dataset


def test_versions_add_files_and_old_versions_stay_as_they_were(operator):
    name = "csc11.005001.pythia.evgen.EVNT.v1"
    catalog.register_new_dataset(user=operator, name=name, files=files("v1", 2))
    catalog.register_new_version(user=operator, name=name, files=files("v2", 3))
    dataset = Dataset.objects.get(name=name)
    assert (dataset.latest_version, dataset.n_files, dataset.state) == (2, 5, DatasetState.OPEN)
    assert selectors.files_in_dataset(dataset=dataset, version=1).count() == 2
    assert selectors.files_in_dataset(dataset=dataset).count() == 5
    assert [v.state for v in dataset.versions.order_by("number")] == ["closed", "open"]
    with pytest.raises(NotFound, match="versions 1 to 2"):
        selectors.files_in_dataset(dataset=dataset, version=3)


def test_states_open_closed_frozen(operator):
    name = "csc11.005002.x.evgen.EVNT.v1"
    catalog.register_new_dataset(user=operator, name=name, files=files("st", 1))
    catalog.close_dataset(user=operator, name=name)
    with pytest.raises(Conflict, match="only be added to an open dataset"):
        catalog.add_files_to_dataset(user=operator, name=name, files=files("st2", 1))
    catalog.register_new_version(user=operator, name=name)  # a closed dataset may get a new version
    catalog.freeze_dataset(user=operator, name=name)
    with pytest.raises(Conflict, match="frozen"):
        catalog.register_new_version(user=operator, name=name, files=files("st3", 1))
    with pytest.raises(Conflict, match="frozen"):
        catalog.close_dataset(user=operator, name=name)
    assert Dataset.objects.get(name=name).n_files == 1


def test_a_known_file_with_another_checksum_is_refused_and_nothing_is_written(operator):
    catalog.register_new_dataset(user=operator, name="mc11.1.a.recon.AOD.v1", files=files("dup", 2))
    clash = files("dup", 1)[0] | {"adler32": "ffffffff"}
    with pytest.raises(Conflict, match="already exists with another size or checksum"):
        catalog.register_new_dataset(user=operator, name="mc11.2.b.recon.AOD.v1", files=[*files("new", 2), clash])
    assert not Dataset.objects.filter(name="mc11.2.b.recon.AOD.v1").exists()
    assert not File.objects.filter(lfn__startswith="new").exists()


def test_the_same_file_may_belong_to_several_datasets(operator):
    shared = files("shared", 2)
    catalog.register_new_dataset(user=operator, name="mc11.1.a.recon.AOD.v1", files=shared)
    catalog.register_new_dataset(user=operator, name="mc11.1.a.merge.AOD.v1", files=shared)
    assert File.objects.count() == 2 and DatasetFile.objects.count() == 4


@pytest.mark.parametrize(
    "spec,message",
    [({"lfn": "a/b", "fsize": 1, "adler32": "00000001"}, "not a valid file name"),
     ({"lfn": "a", "fsize": -1, "adler32": "00000001"}, "fsize"),
     ({"lfn": "a", "fsize": 1, "adler32": "xyz"}, "adler32"),
     ({"lfn": "a", "fsize": 1, "adler32": "00000001", "guid": "nope"}, "not a GUID")],
)  # fmt: skip
def test_bad_file_descriptions_are_refused(operator, spec, message):
    with pytest.raises(InvalidInput, match=message):
        catalog.register_new_dataset(user=operator, name="mc11.9.x.recon.AOD.v1", files=[spec])
    assert not Dataset.objects.exists()


def test_users_write_only_their_own_user_datasets():
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    catalog.register_new_dataset(user=alice, name="user.alice.analysis.v1", files=files("ua", 1))
    with pytest.raises(PermissionDenied, match="belongs to user 'alice'"):
        catalog.add_files_to_dataset(user=bob, name="user.alice.analysis.v1", files=files("ub", 1))
    with pytest.raises(PermissionDenied, match="production_manager or data_operator"):
        catalog.register_new_dataset(user=alice, name="mc11.1.a.recon.AOD.v1")
    with pytest.raises(PermissionDenied):
        catalog.register_new_dataset(user=bob, name="user.alice.sneaky")
    assert Dataset.objects.count() == 1


def test_names_are_never_reused_and_erase_hides_then_purges(operator):
    name = "mc11.1.a.recon.AOD.v1"
    catalog.register_new_dataset(user=operator, name=name, files=files("er", 1))
    catalog.erase_dataset(user=operator, name=name)
    assert not selectors.dataset_list(pattern="mc11.*").exists()
    with pytest.raises(Conflict, match="never reused"):
        catalog.register_new_dataset(user=operator, name=name)
    assert catalog.purge_erased_datasets()["datasets"] == 0  # still in its grace period
    from django.utils import timezone

    assert catalog.purge_erased_datasets(now=timezone.now() + catalog.ERASE_GRACE * 2)["datasets"] == 1
    assert not Dataset.objects.filter(name=name).exists()


def test_datablocks_are_immutable_from_birth(operator):
    block = catalog.register_new_dataset(
        user=operator, name="mc11.1.a.recon.AOD.v1_blk1", kind=DatasetKind.DATABLOCK, files=files("blk", 2)
    )
    assert block.state == DatasetState.FROZEN
    with pytest.raises(Conflict, match="immutable"):
        catalog.add_files_to_dataset(user=operator, name=block.name, files=files("blk2", 1))


def test_listing_by_wildcard_category_and_field(operator):
    for name in ("mc11.1.a.recon.AOD.v1", "mc11.1.a.recon.ESD.v1", "csc11.2.b.evgen.EVNT.v1"):
        catalog.register_new_dataset(user=operator, name=name)
    assert [d.name for d in selectors.dataset_list(pattern="mc11.*.recon.*")] == [
        "mc11.1.a.recon.AOD.v1",
        "mc11.1.a.recon.ESD.v1",
    ]
    assert [d.name for d in selectors.dataset_list(category="csc")] == ["csc11.2.b.evgen.EVNT.v1"]
    assert [d.name for d in selectors.dataset_list(fields={"format": "ESD"})] == ["mc11.1.a.recon.ESD.v1"]
    with pytest.raises(InvalidInput):
        selectors.dataset_list(pattern="mc11.%")


def test_completeness_follows_file_replicas_and_new_files(operator):
    site = SiteFactory(name="BNL", storage_endpoint="/data/bnl")
    name = "mc11.1.a.recon.AOD.v1"
    dataset = catalog.register_new_dataset(user=operator, name=name, files=files("cp", 4))
    lfns = [f["lfn"] for f in files("cp", 4)]
    assert (
        replicas.register_file_replicas(user=operator, site_name="BNL", replicas=[{"lfn": lfn} for lfn in lfns[:3]])
        == 3
    )
    replica = DatasetReplica.objects.get(dataset=dataset, site=site)
    assert (replica.files_present, replica.bytes_present) == (3, 300)
    assert list(selectors.datasets_in_site(site_name="BNL", complete=False)) == [replica]
    # Registering the same replicas again changes nothing.
    assert replicas.register_file_replicas(user=operator, site_name="BNL", replicas=[{"lfn": lfns[0]}]) == 0
    replicas.register_file_replicas(user=operator, site_name="BNL", replicas=[{"lfn": lfns[3]}])
    assert list(selectors.datasets_in_site(site_name="BNL", complete=True)) == [
        DatasetReplica.objects.get(pk=replica.pk)
    ]
    # A new version with a file not at BNL makes the copy incomplete; one already there counts at once.
    catalog.register_new_version(user=operator, name=name, files=[*files("cp", 1), *files("cp_more", 1)])
    replica.refresh_from_db()
    assert (replica.files_present, Dataset.objects.get(pk=dataset.pk).n_files) == (4, 5)
    pfn = FileReplica.objects.get(file__lfn=lfns[0]).pfn
    assert pfn.startswith("/data/bnl/") and pfn.endswith(lfns[0])


def test_register_location_complete_places_every_file(operator):
    SiteFactory(name="LYON", storage_endpoint="/se/lyon")
    catalog.register_new_dataset(user=operator, name="mc11.1.a.recon.AOD.v1", files=files("loc", 5))
    replica = replicas.register_dataset_location(
        user=operator, name="mc11.1.a.recon.AOD.v1", site_name="LYON", complete=True
    )
    assert replica.files_present == 5 and FileReplica.objects.filter(site__name="LYON").count() == 5


def test_claims_protect_a_replica_from_deletion(operator):
    SiteFactory(name="CNAF", storage_endpoint="/se/cnaf")
    catalog.register_new_dataset(user=operator, name="mc11.1.a.recon.AOD.v1", files=files("cl", 2))
    catalog.register_new_dataset(user=operator, name="mc11.1.a.merge.AOD.v1", files=files("cl", 1))
    for name in ("mc11.1.a.recon.AOD.v1", "mc11.1.a.merge.AOD.v1"):
        replicas.register_dataset_location(user=operator, name=name, site_name="CNAF", complete=True)
    replicas.add_claim(
        user=operator, name="mc11.1.a.recon.AOD.v1", site_name="CNAF", lifetime_s=3600, reason="analysis"
    )
    with pytest.raises(Conflict, match="claimed by ddmop until"):
        replicas.delete_dataset_replica(user=operator, name="mc11.1.a.recon.AOD.v1", site_name="CNAF")
    # The merge dataset has no claim: its replica goes, but the shared file stays for the recon copy.
    assert replicas.delete_dataset_replica(user=operator, name="mc11.1.a.merge.AOD.v1", site_name="CNAF") == 0
    assert FileReplica.objects.filter(site__name="CNAF").count() == 2


def test_containers_hold_datasets_without_cycles(operator):
    for name in ("mc11.1.a.recon.AOD.v1", "mc11.1.a.recon.AOD.v2"):
        catalog.register_new_dataset(user=operator, name=name)
    outer = catalog.register_new_dataset(user=operator, name="mc11.1.a.recon.AOD.all", kind=DatasetKind.CONTAINER)
    inner = catalog.register_new_dataset(user=operator, name="mc11.1.a.recon.AOD.cont", kind=DatasetKind.CONTAINER)
    assert (
        containers.add_to_container(
            user=operator, name=inner.name, members=["mc11.1.a.recon.AOD.v1", "mc11.1.a.recon.AOD.v2"]
        )
        == 2
    )
    assert containers.add_to_container(user=operator, name=outer.name, members=[inner.name]) == 1
    with pytest.raises(Conflict, match="cycle"):
        containers.add_to_container(user=operator, name=inner.name, members=[outer.name])
    with pytest.raises(InvalidInput, match="holds datasets, not files"):
        catalog.register_new_dataset(
            user=operator, name="mc11.bad.cont", kind=DatasetKind.CONTAINER, files=files("c", 1)
        )
    assert [d.name for d in selectors.container_members(container=inner)] == [
        "mc11.1.a.recon.AOD.v1",
        "mc11.1.a.recon.AOD.v2",
    ]
    assert containers.remove_from_container(user=operator, name=inner.name, members=["mc11.1.a.recon.AOD.v1"]) == 1


def test_guid_given_is_kept(operator):
    guid = uuid.uuid4()
    catalog.register_new_dataset(
        user=operator,
        name="mc11.1.a.recon.AOD.v1",
        files=[{"lfn": "g.root", "fsize": 1, "adler32": "00000001", "guid": str(guid)}],
    )
    assert File.objects.get(lfn="g.root").guid == guid


def test_purging_an_erased_dataset_takes_its_files_off_storage_and_out_of_the_catalog(
    operator, tmp_path, django_capture_on_commit_callbacks
):
    from django.utils import timezone

    from client.storage import local_path

    site = SiteFactory(name="BNL", storage_endpoint=str(tmp_path / "bnl"))
    erased, kept = files("gone", 2), files("kept", 1)
    catalog.register_new_dataset(user=operator, name="mc11.1.a.recon.AOD.v1", files=erased + kept)
    catalog.register_new_dataset(user=operator, name="mc11.1.a.recon.AOD.v2", files=kept)
    replicas.register_file_replicas(user=operator, site_name="BNL", replicas=erased + kept)
    pfns = dict(FileReplica.objects.values_list("file__lfn", "pfn"))
    for pfn in pfns.values():
        path = local_path(pfn)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    v2_replica = DatasetReplica.objects.get(dataset__name="mc11.1.a.recon.AOD.v2", site=site)
    assert v2_replica.secondary is False  # registered by someone: it keeps its files

    catalog.erase_dataset(user=operator, name="mc11.1.a.recon.AOD.v1")
    with django_capture_on_commit_callbacks(execute=True):
        counts = catalog.purge_erased_datasets(now=timezone.now() + catalog.ERASE_GRACE * 2)

    assert counts == {"datasets": 1, "file_replicas": 2, "files": 2}
    assert set(File.objects.values_list("lfn", flat=True)) == {kept[0]["lfn"]}
    assert list(FileReplica.objects.values_list("file__lfn", flat=True)) == [kept[0]["lfn"]]
    assert [local_path(pfns[f["lfn"]]).exists() for f in erased + kept] == [False, False, True]
    v2_replica.refresh_from_db()
    assert v2_replica.files_present == 1

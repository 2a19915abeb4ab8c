"""Account names with dots (first.last) own their user.<name>.* datasets like any other user,
and a shorter account name that is a prefix of theirs (john for john.doe) gets none of them."""

import pytest

from datasets.models import Dataset, FileReplica
from datasets.owners import owned_by, owner_of
from datasets.services import catalog, replicas
from pandamon import roles
from pandamon.errors import PermissionDenied
from quotas.choices import Resource, SubjectKind
from quotas.models import QuotaRule
from quotas.selectors import storage_used
from tasks.choices import TaskType
from tasks.services.creation import submit_task

from ..factories import SiteFactory, UserFactory, grant_role

pytestmark = pytest.mark.django_db
INPUT = "mc11.007216.singlepart_mu18.digit.v11000302"


@pytest.fixture
def john_doe(db):
    return UserFactory(username="john.doe")


@pytest.fixture
def john(db):
    return UserFactory(username="john")


def user_dataset(user, name, n_files, size=1000):
    files = [{"lfn": f"{name}.{i}.root", "fsize": size, "adler32": "0000abcd"} for i in range(n_files)]
    catalog.register_new_dataset(user=user, name=name, files=files)
    return files


def test_the_longest_existing_account_name_owns_the_dataset(john, john_doe):
    assert owner_of("user.john.doe.ntuple.v1") == "john.doe"
    assert owner_of("user.john.ntuple.v1") == "john"
    assert owner_of("user.john.doe") == "john"  # john's dataset named "doe": an owner needs a field after it
    assert owner_of("user.nobody.x") == "nobody"  # no such account: what the name claims
    assert owner_of("mc11.007216.singlepart_mu18.recon.AOD.v11000303") == ""
    names = ["user.john.a", "user.john.doe.b", "user.john.doe"]
    Dataset.objects.bulk_create([Dataset(name=name) for name in names])
    assert set(Dataset.objects.filter(owned_by("john")).values_list("name", flat=True)) == {"user.john.a",
                                                                                         "user.john.doe"}  # fmt: skip
    assert set(Dataset.objects.filter(owned_by("john.doe")).values_list("name", flat=True)) == {"user.john.doe.b"}


def test_a_dotted_account_writes_its_own_datasets_and_a_prefix_account_may_not(john, john_doe):
    files = user_dataset(john_doe, "user.john.doe.ntuple", 2)
    with pytest.raises(PermissionDenied, match="belongs to user 'john.doe'"):
        catalog.add_files_to_dataset(user=john, name="user.john.doe.ntuple", files=[{"lfn": "x.root", "fsize": 1}])
    SiteFactory(name="BNL", storage_endpoint="/data/bnl")
    with pytest.raises(PermissionDenied, match="only of files in your own user datasets"):
        replicas.register_file_replicas(user=john, site_name="BNL", replicas=files)
    assert replicas.register_file_replicas(user=john_doe, site_name="BNL", replicas=files) == 2
    assert FileReplica.objects.count() == 2


def test_storage_is_charged_to_the_dotted_account_not_the_prefix_one(john, john_doe):
    SiteFactory(name="BNL", storage_endpoint="/data/bnl")
    mine = user_dataset(john, "user.john.small", 1, size=100)
    theirs = user_dataset(john_doe, "user.john.doe.big", 3, size=1000)
    replicas.register_file_replicas(user=john, site_name="BNL", replicas=mine)
    QuotaRule.objects.create(subject_kind=SubjectKind.USER, subject_name="john", resource=Resource.STORAGE_BYTES,
                             hard_limit=500)  # fmt: skip
    # john.doe's 3,000 bytes are over john's 500-byte quota but are not john's: accepted.
    assert replicas.register_file_replicas(user=john_doe, site_name="BNL", replicas=theirs) == 3
    assert (storage_used("john"), storage_used("john.doe")) == (100, 3000)


def test_a_dotted_account_submits_an_analysis_task(john_doe, john):
    operator = UserFactory(username="ddmops")
    grant_role(operator, roles.DATA_OPERATOR)
    catalog.register_new_dataset(
        user=operator, name=INPUT, files=[{"lfn": "in.1.root", "fsize": 10, "adler32": "0000abcd"}]
    )
    spec = {"input_dataset": INPUT, "output_dataset": "user.john.doe.reco.v1", "transformation": "run.sh",
            "job_parameters": "${IN} ${OUT}", "n_files_per_job": 1}  # fmt: skip
    task, pandaids = submit_task(user=john_doe, spec=spec, task_type=TaskType.ANALYSIS)
    assert task.owner_name == "john.doe" and len(pandaids) == 1
    with pytest.raises(PermissionDenied, match="user.john.\\* output datasets only"):
        submit_task(user=john, spec={**spec, "output_dataset": "user.john.doe.reco.v2"}, task_type=TaskType.ANALYSIS)

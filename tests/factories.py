"""factory-boy factories for the core models."""

import uuid

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from jobs.choices import FileType, JobStatus
from jobs.models import Job, JobFile
from sites.models import Cloud, PilotActivity, Site


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")


class CloudFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cloud
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"CLOUD{n}")


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site
        django_get_or_create = ("name",)
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"SITE{n}")
    cloud = factory.SubFactory(CloudFactory)
    max_memory_mb = 4000
    max_disk_mb = 20000
    max_walltime_s = 86400
    cores = 8

    @factory.post_generation
    def activity(site, create, extracted, **kwargs):
        if create:
            PilotActivity.objects.get_or_create(site=site)


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    job_name = factory.Sequence(lambda n: f"job{n}")
    transformation = "/bin/true"
    owner = factory.SubFactory(UserFactory)
    prod_user_name = factory.LazyAttribute(lambda job: job.owner.username if job.owner else "")
    status = JobStatus.DEFINED
    creation_time = factory.LazyFunction(timezone.now)
    modification_time = factory.LazyFunction(timezone.now)
    state_change_time = factory.LazyFunction(timezone.now)


class JobFileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobFile

    job = factory.SubFactory(JobFactory)
    type = FileType.OUTPUT
    lfn = factory.Sequence(lambda n: f"file{n}.root")
    guid = factory.LazyFunction(lambda: str(uuid.uuid4()))


def grant_role(user, role):
    """Give a user a role. The role groups come from a data migration, which a transactional
    test's flush removes; get_or_create keeps later tests independent of test order."""
    from django.contrib.auth.models import Group

    user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


# -- the data flow (models named by label: this module's imports stay those of the core models) ----------


def _this_hour():
    return timezone.now().replace(minute=0, second=0, microsecond=0)


class TransferChannelStatFactory(factory.django.DjangoModelFactory):
    """One hour of a transfer channel; `source` and `destination` are sites."""

    class Meta:
        model = "datasets.TransferChannelStat"

    source = factory.SubFactory(SiteFactory)
    destination = factory.SubFactory(SiteFactory)
    hour = factory.LazyFunction(_this_hour)
    files_done = 10
    bytes_done = 10_000_000
    seconds = 5.0


class ConsistencyCheckFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "datasets.ConsistencyCheck"

    site = factory.SubFactory(SiteFactory)
    started_at = factory.LazyFunction(timezone.now)
    finished_at = factory.LazyFunction(timezone.now)

"""The search box: a PandaID, task id, dataset or file name, site or user goes straight to its page.

Tried in order of how cheap and how unambiguous the lookup is; every lookup is one
indexed query. What matched nothing gets a page that says what was tried."""

from dataclasses import dataclass
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.urls import reverse

from datasets.models import Dataset, File
from jobs.models import Job
from sites.models import Site
from tasks.models import Task


@dataclass(frozen=True)
class Hit:
    kind: str
    label: str
    url: str


def resolve(query):
    """The page `query` names, or None. `query` is stripped and non-empty."""
    if "*" in query:
        return Hit("dataset pattern", query, reverse("datasets-page") + "?" + urlencode({"name": query}))
    if query.isdigit():
        return _job_or_task(int(query))
    for finder in (_site, _dataset, _file, _user):
        hit = finder(query)
        if hit:
            return hit
    return None


def tried(query):
    """What resolve() looked for, for the 'nothing found' page."""
    if query.isdigit():
        return ["a job with this PandaID", "jobs of a task with this id"]
    return ["a site", "a dataset or container", "a file (LFN)", "a user"]


def _job_or_task(number):
    if Job.objects.filter(pandaid=number).exists():
        return Hit("job", str(number), reverse("job-page", args=[number]))
    if Task.objects.filter(pk=number).exists() or Job.objects.filter(task_id=number).exists():
        # The task page (for ids only jobs carry, it sends on to their job list).
        return Hit("task", str(number), reverse("task-page", args=[number]))
    return None


def _site(query):
    name = Site.objects.filter(name__iexact=query).values_list("name", flat=True).first()
    return Hit("site", name, reverse("site-page", args=[name])) if name else None


def _dataset(query):
    name = Dataset.objects.filter(name=query.removesuffix("/"), erased_at__isnull=True).values_list("name", flat=True)
    name = name.first()
    return Hit("dataset", name, reverse("dataset-page", args=[name])) if name else None


def _file(query):
    lfn = File.objects.filter(lfn=query).values_list("lfn", flat=True).first()
    return Hit("file", lfn, reverse("file-page", args=[lfn])) if lfn else None


def _user(query):
    username = get_user_model().objects.filter(username=query).values_list("username", flat=True).first()
    return Hit("user", username, reverse("user-page", args=[username])) if username else None

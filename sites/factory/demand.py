"""What the factory reads from jobs: work waiting at its sites, jobs held by pilots, jobs pilots reported.

The sites app sits below jobs; like datasets' selectors, these reads import the jobs models
(reads only: every write stays in jobs/services). Each query is served by a jobs index:
activated counts by the dispatcher's partial index, held counts by (status, site, time),
recently modified jobs by the modification-time index.
"""

from collections import Counter

from django.db.models import Count

from jobs.choices import PILOT_LABEL_MAP, JobStatus
from jobs.models import Job
from sites.choices import SiteStatus

# Jobs a pilot holds: each takes one of the site's job slots.
HELD_STATES = (JobStatus.SENT, JobStatus.STARTING, JobStatus.RUNNING)
# A job in one of these states was last modified by its pilot (a heartbeat or a state change).
PILOT_UPDATED_STATES = frozenset(
    {JobStatus.SENT, JobStatus.STARTING, JobStatus.RUNNING, JobStatus.HOLDING, JobStatus.TRANSFERRING}
)


def activated_jobs(sites):
    """{site_id: activated jobs a pilot could get}; at a site in test status only test jobs count."""
    counts = Counter()
    normal = [site.pk for site in sites if site.status != SiteStatus.TEST]
    test = [site.pk for site in sites if site.status == SiteStatus.TEST]
    activated = Job.objects.filter(status=JobStatus.ACTIVATED)
    if normal:
        counts.update(_by_site(activated.filter(computing_site_id__in=normal)))
    if test:
        counts.update(
            _by_site(activated.filter(computing_site_id__in=test, prod_source_label__in=PILOT_LABEL_MAP["test"]))
        )
    return dict(counts)


def held_jobs(site_ids):
    """{site_id: jobs in sent/starting/running}, the slots pilots use at the site."""
    return _by_site(Job.objects.filter(status__in=HELD_STATES, computing_site_id__in=site_ids))


def _by_site(queryset):
    return dict(queryset.values_list("computing_site_id").annotate(n=Count("*")).order_by())


def jobs_with_pilot_ids(site_ids, since):
    """[(pandaid, pilot_id, pilot_updated, modification_time)] of the sites' jobs modified since `since`
    that name a pilot; `pilot_updated` says whether the last change was the pilot's own."""
    rows = (
        Job.objects.filter(computing_site_id__in=site_ids, modification_time__gte=since)
        .exclude(pilot_id="")
        .values_list("pandaid", "pilot_id", "status", "modification_time")
    )
    return [
        (pandaid, pilot_id, status in PILOT_UPDATED_STATES, modified) for pandaid, pilot_id, status, modified in rows
    ]


def job_statuses(pandaids):
    """{pandaid: status} of a pilot's jobs, for its page."""
    return dict(Job.objects.filter(pandaid__in=pandaids).values_list("pandaid", "status"))

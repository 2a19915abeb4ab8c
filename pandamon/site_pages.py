"""Site pages: the site list (sites with their jobs) and a site's page.

They live in pandamon/ because they combine sites with jobs (and later data)."""

from jobs.choices import JobStatus
from jobs.selectors import job_counts_by_site_and_status
from pandamon.errors import NotFound, ServiceError
from sites.selectors import site_list as select_sites

from .pages import error_page, render_page

SITE_SHOWN_STATES = (JobStatus.DEFINED, JobStatus.ACTIVATED, JobStatus.SENT, JobStatus.STARTING, JobStatus.RUNNING,
                JobStatus.HOLDING, JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELLED)  # fmt: skip


def site_list(request):
    counts = job_counts_by_site_and_status(statuses=SITE_SHOWN_STATES)
    sites = list(select_sites())
    rows = []
    for site in sites:
        activity = getattr(site, "pilot_activity", None)
        site_counts = counts.get(site.pk, {})
        rows.append(
            {
                "name": site.name, "cloud": site.cloud.name, "tier": site.tier, "status": site.status,
                "max_memory_mb": site.max_memory_mb, "cores": site.cores, "max_running_jobs": site.max_running_jobs,
                "last_pilot_contact": activity.last_contact_at if activity else None,
                "jobs": {state: site_counts.get(state, 0) for state in SITE_SHOWN_STATES},
            }
        )  # fmt: skip
    data = {"meta": {"total": len(rows)}, "rows": rows}
    return render_page(request, "sites/site_list.html", {"rows": rows, "states": SITE_SHOWN_STATES}, json_data=data)


def site_detail(request, name):
    try:
        site = select_sites().filter(name=name).first()
        if site is None:
            raise NotFound(f"no site named {name!r}")
    except ServiceError as error:
        return error_page(request, error)
    activity = getattr(site, "pilot_activity", None)
    jobs = job_counts_by_site_and_status(site_ids=[site.pk]).get(site.pk, {})
    fields = {field.name: getattr(site, field.attname) for field in site._meta.fields if field.name != "cloud"}
    data = {
        "site": {**fields, "cloud": site.cloud.name},
        "last_pilot_contact": activity.last_contact_at if activity else None,
        "jobs_by_state": jobs,
    }
    context = {"site": site, "data": data, "jobs": [(state, jobs[state]) for state in JobStatus if state in jobs]}
    return render_page(request, "sites/site_detail.html", context, json_data=data)

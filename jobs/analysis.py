"""The job status analyzer: why a job that is not running yet is where it is, in plain words, from live data.

Each explanation is a few indexed queries on the job's own site and state; the job page shows
it and its JSON twin carries it (BigPanDA has no such thing: bigpanda-monitor.md §6)."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from datasets.flow_selectors import dispatch_progress, failing_channels
from sites.choices import SiteStatus
from sites.models import Site
from sites.selectors import pilots_silent

from .choices import PILOT_STATES, JobStatus
from .models import Job, JobFile, JobStatusLog
from .services.brokerage import site_limits_refusals


def explain(job, *, now=None):
    """A list of sentences about why `job` waits (empty for jobs already running or ended)."""
    now = now or timezone.now()
    explainer = EXPLAINERS.get(job.status)
    return explainer(job, now) if explainer else []


def _defined(job, now):
    lines = [f"waiting for brokerage since {_ago(job.state_change_time, now)}; brokerage runs every half minute"]
    if job.brokerage_error_diag:
        lines.append(f"the last brokerage attempt found no site: {job.brokerage_error_diag}")
    online = list(Site.objects.filter(status=SiteStatus.ONLINE))
    if not online:
        return [*lines, "no site is online"]
    fitting = [site for site in online if not site_limits_refusals(site, job)]
    if not fitting:
        lines.append(_no_fit(job, online))
    else:
        lines.append(f"{len(fitting)} of {len(online)} online sites can run it")
    return lines


def _no_fit(job, online):
    limits = (("memory", job.min_ram_count, "max_memory_mb", "MB"), ("disk", job.max_disk_count, "max_disk_mb", "MB"),
              ("walltime", job.max_walltime, "max_walltime_s", "s"), ("cores", job.core_count, "cores", ""))  # fmt: skip
    parts = []
    for name, need, field, unit in limits:
        values = [getattr(site, field) for site in online]
        unlimited = field != "cores" and 0 in values
        best = max(values)
        if not unlimited and need > best:
            parts.append(f"{name} {need} {unit}".strip() + f" (max at online sites {best} {unit})".replace(" )", ")"))
    return "no online site satisfies " + ("; ".join(parts) if parts else "its requirements together")


def _assigned(job, now):
    lines = [f"brokered to {_site_name(job)}; waiting {_ago(job.state_change_time, now)} for its input to be "
             "transferred there (input files not yet at the site)"]  # fmt: skip
    block = JobFile.objects.filter(job=job).exclude(dispatch_dblock="").values_list("dispatch_dblock", flat=True)
    block = block.first()
    if block is None:
        return lines
    progress = dispatch_progress(block, job.computing_site_id)
    lines.append(
        f"dispatch block {block}: {progress['present']} of {progress['files']} file(s) at the site; "
        f"transfers {progress['queued']} queued, {progress['submitted']} copying, {progress['failed']} failed"
    )
    if progress["queue_position"] is not None:
        lines.append(f"transfer queue position {progress['queue_position']}: that many queued transfers go first")
    if progress["subscription"] is not None and progress["subscription"].reason:
        lines.append(f"its subscription is {progress['subscription'].state}: {progress['subscription'].reason}")
    for channel in failing_channels(job.computing_site_id, now=now):
        lines.append(f"channel {channel['source']}→{_site_name(job)} failing since {channel['since']:%H:%M} UTC "
                     f"({channel['failed']} failed, {channel['done']} done): {channel['last_error'][:200]}")  # fmt: skip
    if progress["last_error"]:
        lines.append(f"last transfer error: {progress['last_error']}")
    return lines


def _waiting(job, now):
    return [f"held since {_ago(job.state_change_time, now)}: its input data is not available yet"]


def _activated(job, now):
    site = Site.objects.select_related("pilot_activity").filter(pk=job.computing_site_id).first()
    if site is None:
        return ["activated without a site: it needs brokerage again"]
    ahead = Job.objects.filter(status=JobStatus.ACTIVATED, computing_site=site).filter(
        Q(current_priority__gt=job.current_priority) | Q(current_priority=job.current_priority, pandaid__lt=job.pandaid)
    )
    lines = [f"ready at {site.name} since {_ago(job.state_change_time, now)}; {ahead.count()} activated job(s) "
             f"there go before it (higher priority or older)"]  # fmt: skip
    if site.status == SiteStatus.OFFLINE:
        lines.append(f"site {site.name} is offline: its pilots get no jobs")
    activity = getattr(site, "pilot_activity", None)
    last = activity.last_contact_at if activity else None
    if last is None:
        lines.append(f"no pilot has ever called from {site.name}")
    elif pilots_silent(last, now):
        lines.append(f"no pilot contact from {site.name} for {_ago(last, now)}")
    if site.max_running_jobs:
        running = Job.objects.filter(computing_site=site, status__in=PILOT_STATES).count()
        if running >= site.max_running_jobs:
            lines.append(f"{site.name} is at its limit of {site.max_running_jobs} running jobs ({running} running)")
    return lines


def _throttled(job, now):
    reason = (
        JobStatusLog.objects.filter(job=job, new_status=JobStatus.THROTTLED).order_by("-changed_at")
        .values_list("reason", flat=True).first()
    )  # fmt: skip
    return [f"parked since {_ago(job.state_change_time, now)} ({reason or 'running-jobs quota'}); it is released "
            "when its user's or group's running jobs drop under the limit"]  # fmt: skip


def _sent(job, now):
    timeout = timedelta(seconds=settings.PANDA["SENT_TIMEOUT"])
    deadline = job.state_change_time + timeout
    return [f"a pilot on {job.modification_host or 'an unknown node'} took it {_ago(job.state_change_time, now)} "
            f"ago and has not reported yet; it fails with a sent timeout at {deadline:%Y-%m-%d %H:%M} UTC"]  # fmt: skip


def site_waiting_summary(site, *, now=None):
    """Why a site's activated jobs wait: the explanation of its oldest activated job, with the count."""
    now = now or timezone.now()
    oldest = Job.objects.filter(status=JobStatus.ACTIVATED, computing_site=site).order_by("state_change_time").first()
    if oldest is None:
        return []
    return explain(oldest, now=now)


def _site_name(job):
    return job.computing_site.name if job.computing_site_id else "no site"


def _ago(moment, now):
    seconds = max(0, (now - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


EXPLAINERS = {
    JobStatus.PENDING: _defined,
    JobStatus.DEFINED: _defined,
    JobStatus.ASSIGNED: _assigned,
    JobStatus.WAITING: _waiting,
    JobStatus.ACTIVATED: _activated,
    JobStatus.THROTTLED: _throttled,
    JobStatus.SENT: _sent,
}

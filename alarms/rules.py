"""Alarm rules: each looks at live data and returns what is wrong now (a list of Findings).

`evaluate()` raises an alarm per finding and resolves the rule's earlier alarms whose
condition has cleared. Thresholds come from settings.PANDA_ALARMS. Every rule is one or two
GROUP BY queries over indexed, bounded sets (the live working set, the last hours, one row per site).
alarms/categories.py says what each category means."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Avg, Count, F, Q
from django.utils import timezone
from kombu.exceptions import ChannelError, OperationalError

from datasets.choices import Activity, SubscriptionState
from datasets.models import SiteReplicaTotals, Subscription, TransferChannelStat
from jobs.choices import JobStatus
from jobs.models import Job
from pandamon.models import WorkerRun
from pandamon.workers import allowed_silence, latest_runs, periodic_workers
from sites.models import Site, StorageSpace
from sites.selectors import pilots_silent

from .choices import Severity, SubjectKind, channel_subject
from .services.alarms import Finding, raise_alarm, resolve_cleared

LONG_RUNNING_SHOWN = 100


def threshold(name):
    return settings.PANDA_ALARMS[name]


def site_without_pilots(now):
    """Sites with activated jobs and no pilot contact for too long: nothing will run there."""
    waiting = dict(
        Job.objects.filter(status=JobStatus.ACTIVATED).exclude(computing_site=None)
        .values_list("computing_site_id").annotate(n=Count("*")).order_by()
    )  # fmt: skip
    findings = []
    for site in Site.objects.filter(pk__in=waiting).select_related("pilot_activity"):
        activity = getattr(site, "pilot_activity", None)
        last = activity.last_contact_at if activity else None
        if pilots_silent(last, now):
            since = f"since {last:%Y-%m-%d %H:%M} UTC" if last else "ever"
            findings.append(Finding("site-no-pilots", Severity.CRITICAL, SubjectKind.SITE, site.name,
                                    f"{waiting[site.pk]} activated jobs and no pilot contact {since}"))  # fmt: skip
    return findings


def jobs_waiting_too_long(now):
    """Per site, jobs stuck in assigned (input transfer) or activated (no pilot took them) too long."""
    findings = []
    for status, hours_name in ((JobStatus.ASSIGNED, "ASSIGNED_HOURS"), (JobStatus.ACTIVATED, "ACTIVATED_HOURS")):
        hours = threshold(hours_name)
        stuck = (
            Job.objects.filter(status=status, state_change_time__lt=now - timedelta(hours=hours))
            .exclude(computing_site=None)
            .values_list("computing_site__name")
            .annotate(n=Count("*"))
            .order_by()
        )
        for site, n in stuck:
            findings.append(Finding(f"jobs-stuck-{status}", Severity.WARNING, SubjectKind.SITE, site,
                                    f"{n} job(s) {status} for more than {hours} h"))  # fmt: skip
    return findings


def failure_surge(now):
    """Sites where most jobs ending in the last hour failed, or many lost their heartbeat."""
    hour_ago = now - timedelta(hours=1)
    rows = (
        Job.objects.filter(status__in=(JobStatus.FINISHED, JobStatus.FAILED), modification_time__gte=hour_ago)
        .exclude(computing_site=None)
        .values_list("computing_site__name")
        .annotate(
            failed=Count("pandaid", filter=Q(status=JobStatus.FAILED)),
            finished=Count("pandaid", filter=Q(status=JobStatus.FINISHED)),
            lost=Count("pandaid", filter=Q(status=JobStatus.FAILED, job_dispatcher_error_code=100)),
        )
        .order_by()
    )
    findings = []
    for site, failed, finished, lost in rows:
        share = failed / (failed + finished)
        if failed >= threshold("SURGE_MIN_FAILED") and share >= threshold("SURGE_FAILED_SHARE"):
            findings.append(Finding("site-failure-surge", Severity.CRITICAL, SubjectKind.SITE, site,
                                    f"{failed} of {failed + finished} jobs ending in the last hour failed"))  # fmt: skip
        if lost >= threshold("SURGE_MIN_LOST_HEARTBEATS"):
            findings.append(Finding("site-lost-heartbeats", Severity.WARNING, SubjectKind.SITE, site,
                                    f"{lost} jobs lost their heartbeat in the last hour"))  # fmt: skip
    return findings


def long_running_jobs(now):
    """Running jobs taking far longer than finished jobs of their processing type did in the last day."""
    factor, floor = threshold("LONG_RUNNING_FACTOR"), timedelta(hours=threshold("LONG_RUNNING_MIN_HOURS"))
    typical = dict(
        Job.objects.filter(status=JobStatus.FINISHED, modification_time__gte=now - timedelta(days=1),
                           start_time__isnull=False, end_time__isnull=False)
        .values_list("processing_type").annotate(mean=Avg(F("end_time") - F("start_time"))).order_by()
    )  # fmt: skip
    findings = []
    for processing_type, mean in typical.items():
        limit = max(mean * factor, floor)
        running = Job.objects.filter(status=JobStatus.RUNNING, processing_type=processing_type,
                                     start_time__lt=now - limit).values_list("pandaid", "start_time")  # fmt: skip
        for pandaid, started in running.order_by("start_time")[:LONG_RUNNING_SHOWN]:
            hours = (now - started).total_seconds() / 3600
            findings.append(Finding("job-running-too-long", Severity.WARNING, SubjectKind.JOB, str(pandaid),
                                    f"running {hours:.1f} h; {processing_type or 'jobs of no type'} took "
                                    f"{mean.total_seconds() / 3600:.1f} h on average today"))  # fmt: skip
    return findings


def workers_not_running(now):
    """Periodic workers with no run within a few of their periods, or whose last run failed."""
    latest = latest_runs()
    beat_is_running = bool(latest)
    findings = []
    for name, period in periodic_workers():
        allowed = allowed_silence(period)
        run = latest.get(name)
        if run is None:
            if beat_is_running and now - min(r.started_at for r in latest.values()) > allowed:
                findings.append(Finding("worker-not-running", Severity.CRITICAL, SubjectKind.SERVICE, name,
                                        "never ran, while other periodic workers do"))  # fmt: skip
        elif now - run.started_at > allowed:
            findings.append(Finding("worker-not-running", Severity.CRITICAL, SubjectKind.SERVICE, name,
                                    f"no run since {run.started_at:%Y-%m-%d %H:%M} UTC (expected every {period})"))  # fmt: skip
        elif run.status == WorkerRun.Status.FAILED:
            findings.append(Finding("worker-failed", Severity.WARNING, SubjectKind.SERVICE, name,
                                    f"last run failed: {run.error[:300]}"))  # fmt: skip
    return findings


def storage_nearly_full(now):
    """Sites whose storage is nearly full: by their last space report (used / total) when there is one,
    else by the catalogued replicas against the declared capacity."""
    share = threshold("STORAGE_FULL_SHARE")
    findings, reported = [], set()
    for space in StorageSpace.objects.filter(total_bytes__gt=0).select_related("site"):
        reported.add(space.site_id)
        used, total = space.used_bytes, space.total_bytes
        if used >= share * total:
            severity = Severity.CRITICAL if used >= total or space.free_bytes == 0 else Severity.WARNING
            findings.append(Finding("site-storage-full", severity, SubjectKind.SITE, space.site.name,
                                    f"storage {100 * used / total:.0f}% full ({used / 1e9:,.1f} of {total / 1e9:,.1f} "
                                    f"GB used, {space.free_bytes / 1e9:,.1f} GB free): space report by "
                                    f"{space.reported_by} at {space.reported_at:%Y-%m-%d %H:%M} UTC"))  # fmt: skip
    sites = {site.pk: site for site in Site.objects.filter(storage_capacity_gb__gt=0).exclude(pk__in=reported)}
    used = SiteReplicaTotals.objects.filter(site_id__in=sites).values_list("site_id", "bytes")  # each file once
    for site_id, total in used:
        capacity = sites[site_id].storage_capacity_gb * 10**9
        if total and total >= share * capacity:
            findings.append(Finding("site-storage-full", Severity.WARNING if total < capacity else Severity.CRITICAL,
                                    SubjectKind.SITE, sites[site_id].name,
                                    f"storage {100 * total / capacity:.0f}% full ({total / 1e9:,.1f} of "
                                    f"{sites[site_id].storage_capacity_gb:,} GB): the catalog's replicas against "
                                    f"the declared capacity (no space report)"))  # fmt: skip
    return findings


def _duration(delta):
    minutes = delta.total_seconds() / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def subscriptions_stuck(now):
    """Per site, subscriptions stuck (a file failed every transfer attempt) for longer than the threshold."""
    minutes = threshold("SUBSCRIPTION_STUCK_MINUTES")
    # site IN (every site) AND state = stuck: a range of the (site, state) index per site, never the whole table.
    stuck = Subscription.objects.filter(site_id__in=list(Site.objects.values_list("pk", flat=True)),
                                        state=SubscriptionState.STUCK, stuck_at__lt=now - timedelta(minutes=minutes))  # fmt: skip
    per_site = (
        stuck.values_list("site_id")
        .annotate(n=Count("pk"), dispatch=Count("pk", filter=Q(activity=Activity.DISPATCH)))
        .order_by()
    )
    findings = []
    for site_id, n, dispatch in per_site:
        oldest = stuck.filter(site_id=site_id).select_related("site", "dataset").order_by("stuck_at", "pk").first()
        if oldest is None:  # unstuck between the two queries
            continue
        blocking = f", {dispatch} of them PanDA dispatch blocks (jobs wait)" if dispatch else ""
        findings.append(Finding("subscriptions-stuck", Severity.CRITICAL if dispatch else Severity.WARNING,
                                SubjectKind.SITE, oldest.site.name,
                                f"{n} subscription(s) stuck for more than {minutes} min{blocking}; longest: "
                                f"{oldest.dataset.name} for {_duration(now - oldest.stuck_at)} (since "
                                f"{oldest.stuck_at:%Y-%m-%d %H:%M} UTC): {oldest.reason or 'no reason recorded'}"))  # fmt: skip
    return findings


def channel_failure_rate(now):
    """Channels (source -> destination) where most transfer attempts of the last hours failed."""
    hours, min_attempts, share = (threshold(name) for name in
                                  ("CHANNEL_WINDOW_HOURS", "CHANNEL_MIN_ATTEMPTS", "CHANNEL_FAILED_SHARE"))  # fmt: skip
    start = (now - timedelta(hours=hours)).replace(minute=0, second=0, microsecond=0)
    # A range of the unique (hour, source, destination) index: a few rows per active channel.
    rows = (
        TransferChannelStat.objects.filter(hour__gte=start)
        .order_by("hour")
        .values_list("source__name", "destination__name", "files_done", "files_failed", "last_error")
    )
    channels = {}
    for source, destination, done, failed, error in rows:
        channel = channels.setdefault((source, destination), {"done": 0, "failed": 0, "error": ""})
        channel["done"] += done
        channel["failed"] += failed
        channel["error"] = error or channel["error"]  # the latest hour's error
    findings = []
    for (source, destination), channel in sorted(channels.items()):
        attempts = channel["done"] + channel["failed"]
        if attempts < min_attempts or channel["failed"] < share * attempts:
            continue
        findings.append(Finding("channel-failures", Severity.WARNING if channel["done"] else Severity.CRITICAL,
                                SubjectKind.CHANNEL, channel_subject(source, destination),
                                f"{channel['failed']} of {attempts} transfer attempts from {source} to {destination} "
                                f"failed since {start:%Y-%m-%d %H:%M} UTC; last error: "
                                f"{channel['error'] or 'none recorded'}"))  # fmt: skip
    return findings


def celery_backlog(now):
    """Tasks waiting in the Celery queue beyond the threshold (workers too few or stuck), or no broker."""
    from pandamon.celery import app

    queue = app.conf.task_default_queue
    try:
        with app.connection_for_read() as connection:
            waiting = connection.default_channel.queue_declare(queue=queue, passive=True).message_count
    except ChannelError:
        return []  # the queue does not exist yet: nothing was ever queued
    except (OSError, OperationalError) as error:  # refused, unreachable, timed out: every worker stops with it
        return [Finding("broker-unreachable", Severity.CRITICAL, SubjectKind.SERVICE, "celery broker",
                        f"cannot reach the Celery broker: {error}")]  # fmt: skip
    if waiting > threshold("CELERY_BACKLOG"):
        return [Finding("celery-backlog", Severity.WARNING, SubjectKind.SERVICE, f"celery queue {queue}",
                        f"{waiting:,} tasks waiting for a worker")]  # fmt: skip
    return []


RULES = (site_without_pilots, jobs_waiting_too_long, failure_surge, long_running_jobs, workers_not_running,
         storage_nearly_full, subscriptions_stuck, channel_failure_rate, celery_backlog)  # fmt: skip


def evaluate(now=None, rules=RULES):
    """Run the rules (every rule by default): raise what fires, resolve what cleared. Returns {rule: alarms firing}."""
    now = now or timezone.now()
    outcome = {}
    for rule in rules:
        source = f"rule:{rule.__name__}"
        findings = rule(now)
        for finding in findings:
            raise_alarm(finding, source=source, now=now)
        resolve_cleared(source=source, still_firing=findings, now=now)
        outcome[rule.__name__] = len(findings)
    return outcome

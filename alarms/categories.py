"""The alarm categories the rules raise and what each means: the alarm panel, the API and the docs show it.

Help texts name their thresholds ({NAME} = settings.PANDA_ALARMS[NAME]), filled in when read, so
they always say what the running server checks."""

from dataclasses import dataclass

from django.conf import settings

from .choices import SubjectKind


@dataclass(frozen=True)
class Category:
    name: str
    rule: str
    subject_kind: str
    help: str


CATEGORIES = (
    Category("site-no-pilots", "site_without_pilots", SubjectKind.SITE,
             "Activated jobs wait at the site and no pilot contacted it for {NO_PILOT_MINUTES} min: nothing runs "
             "there. Check the pilot factory and the site's batch queue."),
    Category("jobs-stuck-assigned", "jobs_waiting_too_long", SubjectKind.SITE,
             "Jobs assigned for more than {ASSIGNED_HOURS} h: their input has not reached the site (see their "
             "dispatch block's subscription and transfers)."),
    Category("jobs-stuck-activated", "jobs_waiting_too_long", SubjectKind.SITE,
             "Jobs activated for more than {ACTIVATED_HOURS} h: no pilot takes them."),
    Category("site-failure-surge", "failure_surge", SubjectKind.SITE,
             "At least {SURGE_MIN_FAILED} jobs, and {SURGE_FAILED_SHARE:.0%} or more of the jobs ending at the site "
             "in the last hour, failed."),
    Category("site-lost-heartbeats", "failure_surge", SubjectKind.SITE,
             "{SURGE_MIN_LOST_HEARTBEATS} or more jobs lost their heartbeat at the site in the last hour (worker "
             "nodes or the network dying)."),
    Category("job-running-too-long", "long_running_jobs", SubjectKind.JOB,
             "A job has been running {LONG_RUNNING_FACTOR:g} times longer than finished jobs of its processing type "
             "took on average in the last day (and at least {LONG_RUNNING_MIN_HOURS:g} h)."),
    Category("worker-not-running", "workers_not_running", SubjectKind.SERVICE,
             "A periodic worker did not start within {WORKER_MISSED_PERIODS} of its periods (at least "
             "{WORKER_MIN_MINUTES} min): Celery beat or the Celery workers are down."),
    Category("worker-failed", "workers_not_running", SubjectKind.SERVICE,
             "The last run of a periodic worker failed; the message has its error."),
    Category("site-storage-full", "storage_nearly_full", SubjectKind.SITE,
             "The site's storage is {STORAGE_FULL_SHARE:.0%} full or more: used / total of its last space report "
             "(pilots, the storage agent) or, when it never reported, the catalog's replicas against its declared "
             "capacity. The message says which, and when it was reported. Critical when full."),
    Category("celery-backlog", "celery_backlog", SubjectKind.SERVICE,
             "More than {CELERY_BACKLOG} tasks wait in the Celery queue: too few workers, or stuck ones."),
    Category("broker-unreachable", "celery_backlog", SubjectKind.SERVICE,
             "The Celery broker cannot be reached: no periodic or background work runs."),
    Category("subscriptions-stuck", "subscriptions_stuck", SubjectKind.SITE,
             "Subscriptions of the site stuck for more than {SUBSCRIPTION_STUCK_MINUTES} min: a file failed every "
             "transfer attempt. The message names the longest-stuck dataset and why. Critical when a PanDA "
             "dispatch block is among them (jobs wait for it). Stuck transfers are retried after the repair delay; "
             "resolved when none is stuck."),
    Category("channel-failures", "channel_failure_rate", SubjectKind.CHANNEL,
             "Since the start of the hour {CHANNEL_WINDOW_HOURS} h ago, {CHANNEL_FAILED_SHARE:.0%} or more of at "
             "least {CHANNEL_MIN_ATTEMPTS} transfer attempts from the source site to the destination site failed; the "
             "message has the last error. Critical when none succeeded. Resolved when the share drops or the "
             "channel goes quiet."),
)  # fmt: skip

BY_NAME = {category.name: category for category in CATEGORIES}
OTHER_HELP = "Registered by a probe, a script or a user through POST /api/v1/alarms/."


def category_help(name):
    """What an alarm of this category means, with the thresholds in force."""
    category = BY_NAME.get(name)
    return category.help.format(**settings.PANDA_ALARMS) if category else OTHER_HELP


def categories():
    """[{category, rule, subject_kind, help}] of every category the rules raise."""
    return [{"category": c.name, "rule": c.rule, "subject_kind": str(c.subject_kind), "help": category_help(c.name)}
            for c in CATEGORIES]  # fmt: skip

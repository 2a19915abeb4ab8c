"""Email notifications of job start, finish and failure, batched into one digest per user per run.

The job state log is read incrementally (like quota accounting) by a periodic task, so
a task of a thousand jobs ending in one cycle sends its owner one mail that counts them,
not a thousand mails; and the pilots' hot paths pay nothing for it."""

from collections import Counter, defaultdict
from urllib.parse import urlencode

from django.conf import settings
from django.core.mail import get_connection, send_mass_mail

from jobs.choices import JobStatus
from jobs.services.status_log import consume_batch

from ..models import NotificationPreference, SentNotification

LOG_CURSOR = "email-notifications"
EXAMPLES_PER_GROUP = 5
# The changes a user can be told about, and the preference that asks for each.
KINDS = {
    "started": "on_start",
    "finished": "on_finish",
    "failed": "on_failure",
}


def kind_of(old_status, new_status):
    if new_status == JobStatus.RUNNING and old_status in (JobStatus.SENT, JobStatus.STARTING):
        return "started"
    if new_status in (JobStatus.FINISHED, JobStatus.FAILED):
        return new_status
    return None


def send_job_notifications(*, lag_seconds=None, batch=None):
    """Mail each subscribed owner one digest of their jobs' events since the last run; returns mails sent."""
    mails = []

    def handle(changes):
        mails.append(_send_digests(_events_by_owner(changes)))

    while consume_batch(LOG_CURSOR, job_fields=("owner_id", "task_id", "job_name"), handle=handle,
                        lag_seconds=lag_seconds, batch=batch):  # fmt: skip
        pass
    return sum(mails)


def _events_by_owner(changes):
    events = defaultdict(list)
    for change in changes:
        kind = kind_of(change["old_status"], change["new_status"])
        if kind and change["job__owner_id"]:
            events[change["job__owner_id"]].append({**change, "kind": kind})
    return events


def _send_digests(events):
    preferences = NotificationPreference.objects.filter(user_id__in=events).select_related("user")
    mails, records = [], []
    for preference in preferences:
        wanted = [event for event in events[preference.user_id] if getattr(preference, KINDS[event["kind"]])]
        if not wanted or not preference.address:
            continue
        subject, body = digest(wanted, username=preference.user.username)
        mails.append((subject, body, settings.DEFAULT_FROM_EMAIL, [preference.address]))
        records.append(SentNotification(user=preference.user, address=preference.address, subject=subject,
                                        events=len(wanted)))  # fmt: skip
    if mails:
        # One connection for the whole batch; a mail server failure raises, the transaction
        # rolls back and the cursor stays put, so the events are mailed on the next run.
        send_mass_mail(mails, fail_silently=False, connection=get_connection())
        SentNotification.objects.bulk_create(records)
    return len(mails)


def digest(events, *, username):
    """(subject, body) of one mail: counts per kind, then per task with a few example jobs."""
    counts = Counter(event["kind"] for event in events)
    subject = "PanDA: " + ", ".join(f"{counts[kind]} job{'s' if counts[kind] != 1 else ''} {kind}"
                                    for kind in KINDS if counts[kind])  # fmt: skip
    by_group = defaultdict(list)
    for event in events:
        by_group[(event["job__task_id"], event["kind"])].append(event)
    lines = []
    for (task_id, kind), group in sorted(by_group.items(), key=lambda item: (item[0][0] or 0, item[0][1])):
        where = f"task {task_id}" if task_id else "jobs without a task"
        examples = ", ".join(str(event["job_id"]) for event in group[:EXAMPLES_PER_GROUP])
        more = f" and {len(group) - EXAMPLES_PER_GROUP} more" if len(group) > EXAMPLES_PER_GROUP else ""
        lines.append(f"{where}: {len(group)} {kind} (PandaID {examples}{more})")
    base = settings.PANDA["PORTAL_URL"].rstrip("/")
    lines.append("")
    lines.append(f"Your jobs: {base}/jobs/?{urlencode({'produsername': username})}")
    lines.append(f"Change what you are sent: {base}/notifications/")
    return subject, "\n".join(lines)

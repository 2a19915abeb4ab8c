"""Job control through the pilot's heartbeat: peek requests and debug mode (docs/job-control.md).

A permitted user asks for a peek (request_peek) or turns debug mode on (set_debug_mode). The
next updateJob answer carries the pending requests to the job's pilot (for_pilot); the pilot
runs only the fixed read-only action a request's kind names, and its next updateJob brings the
answers (record_from_pilot). Requests a pilot never answers (a pilot3, which ignores them, or a
job that ended first) expire, so they do not block new ones.
"""

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from pandamon import roles
from pandamon.errors import Conflict, InvalidInput, NotFound, PermissionDenied

from ..choices import FINAL_STATES, JobStatus
from ..models import Job, JobDebugOutput, PeekRequest

PENDING, ANSWERED, EXPIRED = PeekRequest.State.PENDING, PeekRequest.State.ANSWERED, PeekRequest.State.EXPIRED
# Only a job whose pilot runs it (and so heartbeats) can answer.
PEEK_STATES = frozenset({JobStatus.STARTING, JobStatus.RUNNING})
ANSWER_LIMIT = 64 * 1024
# Longer than a default heartbeat (1800 s): a heartbeating pilot of this project answers in time.
REQUEST_TTL = timedelta(hours=1)
# After a request, a shifter often asks again: the pilot heartbeats every POLL_INTERVAL_S for a while.
WATCH_WINDOW = timedelta(minutes=10)
POLL_INTERVAL_S = 5
KEEP_PER_KIND = 5  # answered or expired requests kept per job and kind (each answer may be 64 KB)


def may_control(user, job):
    """Peek and debug mode: the job's owner, a shifter or an admin."""
    if user is None or not user.is_authenticated:
        return False
    if job.owner_id is not None and job.owner_id == user.pk:
        return True
    return roles.is_admin(user) or roles.has_role(user, roles.SHIFTER)


def check_may_control(user, job, what):
    if not may_control(user, job):
        raise PermissionDenied(f"you may not {what} job {job.pandaid}: only its owner, a shifter or an admin may")


def locked_job(pandaid):
    job = Job.objects.select_for_update().filter(pandaid=pandaid).first()
    if job is None:
        raise NotFound(f"no job with PandaID {pandaid}")
    return job


def request_peek(*, user, pandaid, kind, now=None):
    """Ask the job's pilot for `kind` (tail, ls or ps); returns the pending PeekRequest."""
    if kind not in PeekRequest.Kind.values:
        raise InvalidInput(f"kind must be one of {', '.join(PeekRequest.Kind.values)}, not {str(kind)[:20]!r}")
    now = now or timezone.now()
    with transaction.atomic():
        job = locked_job(pandaid)
        check_may_control(user, job, "peek at")
        if job.status not in PEEK_STATES:
            raise Conflict(f"job {pandaid} is {job.status}: only a starting or running job has a pilot to answer")
        _expire(PeekRequest.objects.filter(job=job, state=PENDING, requested_at__lt=now - REQUEST_TTL), now,
                "no answer from the pilot within an hour")  # fmt: skip
        pending = PeekRequest.objects.filter(job=job, kind=kind, state=PENDING).first()
        if pending is not None:
            raise Conflict(
                f"a {kind} request for job {pandaid} is already pending (asked at "
                f"{pending.requested_at:%Y-%m-%d %H:%M:%S} UTC); the pilot answers it with its next heartbeat"
            )
        try:
            with transaction.atomic():
                return PeekRequest.objects.create(job=job, kind=kind, requested_by=user, requested_at=now)
        except IntegrityError:  # the unique pending constraint: the same click twice at once
            raise Conflict(f"a {kind} request for job {pandaid} is already pending") from None


def set_debug_mode(*, user, pandaid, on):
    """Turn the job's debug mode on or off; returns the job. The pilot learns it on its next heartbeat."""
    if not isinstance(on, bool):
        raise InvalidInput("on must be true or false")
    with transaction.atomic():
        job = locked_job(pandaid)
        check_may_control(user, job, "set debug mode of")
        if on and job.status in FINAL_STATES:
            raise Conflict(f"job {pandaid} is {job.status}: it has no pilot to debug")
        if job.debug_mode != on:
            Job.objects.filter(pandaid=job.pandaid).update(debug_mode=on)
            job.debug_mode = on
    return job


# -- the pilot's side (called by jobs.services.reports inside its transaction, the job row locked) --


def record_from_pilot(*, job, answers, debug_stdout, now):
    """Store what an updateJob brought: peek answers {request id: text} and a debug stdout tail.

    Answers to unknown ids, to other jobs' requests or to requests no longer pending are ignored:
    a pilot may resend an answer after a lost reply."""
    if debug_stdout:
        JobDebugOutput.objects.update_or_create(
            job=job, defaults={"stdout": debug_stdout[-ANSWER_LIMIT:], "received_at": now}
        )
    if not answers:
        return 0
    requests = list(PeekRequest.objects.filter(job=job, state=PENDING, pk__in=list(answers)))
    for request in requests:
        request.state, request.answered_at = ANSWERED, now
        request.answer = _bounded(answers[request.pk])
    PeekRequest.objects.bulk_update(requests, ["state", "answered_at", "answer"])
    for kind in {request.kind for request in requests}:
        _prune(job, kind)
    return len(requests)


def for_pilot(*, job, now):
    """The job-control keys of an updateJob answer: `peek` (pending requests) and `peekInterval`.

    `peekInterval` (seconds) asks the pilot to heartbeat at least that often while someone is
    looking at the job: a request is pending or was made within the watch window."""
    recent = Q(state=PENDING) | Q(requested_at__gte=now - WATCH_WINDOW)
    rows = list(PeekRequest.objects.filter(recent, job=job).order_by("id").values_list("pk", "kind", "state"))
    extra = {}
    pending = [{"id": pk, "kind": kind} for pk, kind, state in rows if state == PENDING]
    if pending:
        extra["peek"] = pending
    if rows:
        extra["peekInterval"] = POLL_INTERVAL_S
    return extra


def expire_for_job(*, job, now, why):
    """The job left its pilot (final report): nobody will answer its pending requests."""
    return _expire(PeekRequest.objects.filter(job=job, state=PENDING), now, why)


def expire_stale(*, now=None):
    """Pending requests past their time to live, or whose job no longer has a pilot (a periodic clean-up)."""
    now = now or timezone.now()
    stale = PeekRequest.objects.filter(state=PENDING).filter(
        Q(requested_at__lt=now - REQUEST_TTL) | ~Q(job__status__in=PEEK_STATES)
    )
    return _expire(stale, now, "not answered: the job ended or its pilot did not answer in time")


def _expire(queryset, now, why):
    return queryset.update(state=EXPIRED, answered_at=now, answer=why)


def _bounded(text):
    text = str(text)
    if len(text) <= ANSWER_LIMIT:
        return text
    note = "[... cut: only the end is kept]\n"
    return note + text[-(ANSWER_LIMIT - len(note)) :]


def _prune(job, kind):
    """Keep the newest KEEP_PER_KIND finished requests of a kind: repeated peeks must not pile up."""
    done = PeekRequest.objects.filter(job=job, kind=kind).exclude(state=PENDING).order_by("-requested_at", "-id")
    old = list(done.values_list("pk", flat=True)[KEEP_PER_KIND:])
    if old:
        PeekRequest.objects.filter(pk__in=old).delete()

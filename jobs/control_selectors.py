"""Reads for job control: a job's peek requests with their answers and its debug output."""

from django.utils import timezone

from .models import JobDebugOutput, PeekRequest
from .services.peek import PEEK_STATES, PENDING, REQUEST_TTL, may_control

SHOWN_REQUESTS = 15


def shown_state(request, job, now):
    """A pending request the pilot can no longer answer reads as expired, before any clean-up says so."""
    if request.state == PENDING and (job.status not in PEEK_STATES or request.requested_at < now - REQUEST_TTL):
        return PeekRequest.State.EXPIRED.value
    return request.state


def peek_requests(*, job, now=None):
    """The job's latest peek requests, newest first, as plain rows (page, JSON twin, API)."""
    now = now or timezone.now()
    requests = PeekRequest.objects.filter(job=job).select_related("requested_by")[:SHOWN_REQUESTS]
    return [peek_row(request, job, now) for request in requests]


def peek_row(request, job, now=None):
    return {
        "id": request.pk,
        "kind": request.kind,
        "state": shown_state(request, job, now or timezone.now()),
        "requested_by": request.requested_by.username if request.requested_by else None,
        "requested_at": request.requested_at,
        "answered_at": request.answered_at,
        "answer": request.answer,
    }


def debug_output(*, job):
    """The latest stdout tail a pilot in debug mode sent ({stdout, received_at}), or None."""
    return JobDebugOutput.objects.filter(job=job).values("stdout", "received_at").first()


def job_control(*, job):
    """Everything the job page's "Job control" section and its JSON twin show."""
    peeks = peek_requests(job=job)
    return {
        "debug_mode": job.debug_mode,
        "peeks": peeks,
        "debug_output": debug_output(job=job),
        "pending": any(row["state"] == PENDING for row in peeks),
    }


def control_actions(user, job):
    """Which job-control buttons this user gets: peeks while a pilot runs the job, debug mode until it ends."""
    if not may_control(user, job):
        return {"peek": False, "debug": False}
    return {"peek": job.status in PEEK_STATES, "debug": not job.is_final}

"""The running-jobs hard limits of users and physics groups: activated jobs of an account at its
limit are parked as `throttled` (PanDA's throttled state) and released, best priority first, as
its running jobs end. A job is released only when both its user and its group have room.

Done periodically rather than in getJob, so the dispatcher's hot statement stays as it is."""

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q

from jobs.choices import JobStatus
from jobs.models import Job
from jobs.services import state

from ..choices import AccountKind, Resource
from ..selectors import limits_for, running_jobs

ACTOR = "quota-throttler"
WAITING = (JobStatus.ACTIVATED, JobStatus.THROTTLED)


def apply_running_limits():
    """Throttle the waiting jobs of accounts at their running-jobs limit; release the others'."""
    headroom = _headroom(_accounts_with_waiting_jobs())
    blocked_users = {
        name for (kind, name), room in headroom.items() if kind == AccountKind.USER and room is not None and room <= 0
    }
    blocked_groups = {
        name for (kind, name), room in headroom.items() if kind == AccountKind.GROUP and room is not None and room <= 0
    }
    with transaction.atomic():
        throttled = _throttle(blocked_users, blocked_groups)
        released = _release(headroom, blocked_users, blocked_groups)
    return {"throttled": throttled, "released": released}


def _accounts_with_waiting_jobs():
    pairs = Job.objects.filter(status__in=WAITING).values_list("prod_user_name", "working_group").distinct()
    accounts = set()
    for user, group in pairs:
        if user:
            accounts.add((AccountKind.USER, user))
        if group:
            accounts.add((AccountKind.GROUP, group))
    return accounts


def _headroom(accounts):
    """{account: running jobs it may still start (None: no limit)}."""
    names = [name for kind, name in accounts if kind == AccountKind.USER]
    users = {user.username: user for user in get_user_model().objects.filter(username__in=names)}
    running = running_jobs(accounts)
    room = {}
    for kind, name in accounts:
        limit = limits_for(kind, name, user=users.get(name)).get(Resource.RUNNING_JOBS)
        has_limit = limit is not None and limit.hard is not None
        room[(kind, name)] = limit.hard - running.get((kind, name), 0) if has_limit else None
    return room


def _throttle(blocked_users, blocked_groups):
    if not blocked_users and not blocked_groups:
        return 0
    at_limit = Q(prod_user_name__in=blocked_users) | Q(working_group__in=blocked_groups)
    jobs = list(Job.objects.select_for_update(skip_locked=True).filter(at_limit, status=JobStatus.ACTIVATED))
    state.transition_many(jobs, JobStatus.THROTTLED, actor=ACTOR, reason="running-jobs quota reached")
    return len(jobs)


def _release(headroom, blocked_users, blocked_groups):
    candidates = (
        Job.objects.select_for_update(skip_locked=True)
        .filter(status=JobStatus.THROTTLED)
        .exclude(prod_user_name__in=blocked_users)
        .exclude(working_group__in=blocked_groups)
        .order_by("-current_priority", "pandaid")
    )
    room = dict(headroom)
    released = []
    for job in candidates:
        accounts = [(AccountKind.USER, job.prod_user_name)] + (
            [(AccountKind.GROUP, job.working_group)] if job.working_group else []
        )
        if all(room.get(account) is None or room[account] > 0 for account in accounts):
            released.append(job)
            for account in accounts:
                if room.get(account) is not None:
                    room[account] -= 1
    state.transition_many(released, JobStatus.ACTIVATED, actor=ACTOR, reason="under the running-jobs quota again")
    return len(released)

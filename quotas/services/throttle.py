"""The running-jobs hard limit: a user's activated jobs beyond it are parked as `throttled`
and released, best priority first, when running jobs end (PanDA's throttled state).

Done periodically rather than in getJob, so the dispatcher's hot statement stays as it is."""

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count

from jobs.choices import JobStatus
from jobs.models import Job
from jobs.services import state

from ..choices import AccountKind, Resource
from ..selectors import limits_for, usage_of

ACTOR = "quota-throttler"


def apply_running_limits():
    """Throttle or release each user's waiting jobs against their running-jobs hard limit."""
    outcome = {"throttled": 0, "released": 0}
    users = {user.username: user for user in get_user_model().objects.filter(username__in=_users_with_waiting_jobs())}
    for name in _users_with_waiting_jobs():
        limit = limits_for(AccountKind.USER, name, user=users.get(name)).get(Resource.RUNNING_JOBS)
        running = usage_of(AccountKind.USER, name)[Resource.RUNNING_JOBS]
        headroom = None if limit is None or limit.hard is None else limit.hard - running
        if headroom is not None and headroom <= 0:
            outcome["throttled"] += _move(name, JobStatus.ACTIVATED, JobStatus.THROTTLED, None,
                                          f"running-jobs quota: {running} of {limit.hard} running")  # fmt: skip
        else:
            outcome["released"] += _move(name, JobStatus.THROTTLED, JobStatus.ACTIVATED, headroom,
                                         "under the running-jobs quota again")  # fmt: skip
    return outcome


def _users_with_waiting_jobs():
    rows = Job.objects.filter(status__in=(JobStatus.ACTIVATED, JobStatus.THROTTLED)).exclude(prod_user_name="")
    return [name for name, _ in rows.values_list("prod_user_name").annotate(n=Count("pandaid")).order_by()]


def _move(user_name, old, new, at_most, reason):
    with transaction.atomic():
        jobs = Job.objects.select_for_update(skip_locked=True).filter(prod_user_name=user_name, status=old)
        jobs = list(jobs.order_by("-current_priority", "pandaid")[:at_most] if at_most else jobs)
        state.transition_many(jobs, new, actor=ACTOR, reason=reason)
    return len(jobs)

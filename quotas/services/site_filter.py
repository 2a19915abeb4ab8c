"""Quotas as brokerage rules (registered with jobs.services.brokerage in quotas/apps.py).

* An account (user or physics group) at its running-jobs hard limit: its jobs are held in `defined`
  (not brokered: they could not start, and would only lengthen site queues and move input for
  nothing); brokerage tries them again each pass and places them once the account has room.
  Jobs already activated are parked by the throttler (quota-throttler) as before.
* A user's per-site storage hard limit reached at a site: their analysis jobs do not go there,
  since the outputs they write at the site would be refused by the catalog (check_storage).

Usage comes from the same incremental counters as enforcement, so it lags by one accounting cycle.
"""

from django.contrib.auth import get_user_model

from jobs.services.brokerage import SiteRule

from ..choices import AccountKind, Resource
from ..selectors import limits_for, running_jobs, site_storage_limits, storage_used

USER_LABELS = ("user", "panda")  # jobs writing user.<owner>.* datasets


def site_rules(jobs):
    """{pandaid: [SiteRule, ...]} for the jobs whose account is at a limit that matters for brokerage."""
    accounts = {(AccountKind.USER, job.prod_user_name) for job in jobs if job.prod_user_name}
    accounts |= {(AccountKind.GROUP, job.working_group) for job in jobs if job.working_group}
    if not accounts:
        return {}
    names = [name for kind, name in accounts if kind == AccountKind.USER]
    users = {user.username: user for user in get_user_model().objects.filter(username__in=names)}
    holds = _holds(accounts, users)
    storage = {name: _full_sites(name, users.get(name)) for name in names}
    found = {}
    for job in jobs:
        rules = [holds[account] for account in _accounts_of(job) if account in holds]
        full = storage.get(job.prod_user_name) if job.prod_source_label in USER_LABELS else None
        if full:
            rules.append(full)
        if rules:
            found[job.pandaid] = rules
    return found


def _accounts_of(job):
    if job.prod_user_name:
        yield (AccountKind.USER, job.prod_user_name)
    if job.working_group:
        yield (AccountKind.GROUP, job.working_group)


def _holds(accounts, users):
    running = running_jobs(accounts)
    holds = {}
    for kind, name in sorted(accounts):
        limit = limits_for(kind, name, user=users.get(name) if kind == AccountKind.USER else None)
        limit = limit.get(Resource.RUNNING_JOBS)
        n = running.get((kind, name), 0)
        if limit is not None and limit.hard is not None and n >= limit.hard:
            whose = f"user {name}" if kind == AccountKind.USER else f"group {name}"
            holds[(kind, name)] = SiteRule(
                "quota_running", hold=f"held: {whose} is at the running-jobs quota ({n:,} of {limit.hard:,} "
                "running); brokered when its running jobs end",
            )  # fmt: skip
    return holds


def _full_sites(name, user):
    """A rule excluding the sites where the user's datasets reached the per-site storage hard limit."""
    full = frozenset(
        site for site, limit in site_storage_limits(name, user=user).items()
        if limit.hard is not None and storage_used(name, site_name=site) >= limit.hard
    )  # fmt: skip
    if not full:
        return None
    return SiteRule("storage_quota", f"at the storage quota of {name} (outputs would be refused)", exclude=full)

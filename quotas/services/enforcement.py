"""Quota enforcement at submission: hard limits refuse, soft limits lower the priority.

Registered with jobs.services.submission as a submission check (the jobs layer does not
import quotas: quotas observes jobs). Usage comes from the incremental counters, so a
burst of submissions inside one accounting cycle can overshoot a queued-jobs limit by
what was submitted in that cycle; the counters catch up within ACCOUNTING_INTERVAL."""

from collections import defaultdict

from django.conf import settings
from django.contrib.auth import get_user_model

from datasets.models import DatasetFile
from datasets.owners import owner_of
from pandamon.errors import PermissionDenied, ServiceError
from pandamon.models import PhysicsGroup

from ..choices import AccountKind, Resource
from ..selectors import limits_for, next_reset, site_storage_limits, storage_used, usage_of


class QuotaExceeded(ServiceError):
    status_code = 429


def check_submission(*, submitter, jobs):
    """Refuse the whole submission if any account would pass a hard limit; penalise soft ones."""
    for (kind, name), account_jobs in _jobs_by_account(submitter, jobs).items():
        if kind == AccountKind.GROUP:
            _check_membership(submitter, name)
        limits = limits_for(kind, name, user=submitter if kind == AccountKind.USER else None)
        usage = usage_of(kind, name)
        _refuse_over_hard(kind, name, limits, usage, len(account_jobs))
        if _over_soft(limits, usage, len(account_jobs)):
            for job in account_jobs:
                job.current_priority -= settings.PANDA["SOFT_QUOTA_PRIORITY_PENALTY"]


def _jobs_by_account(submitter, jobs):
    accounts = defaultdict(list)
    for job in jobs:
        accounts[(AccountKind.USER, submitter.username)].append(job)
        if job.working_group:
            accounts[(AccountKind.GROUP, job.working_group)].append(job)
    return accounts


def _check_membership(submitter, group):
    if not PhysicsGroup.objects.filter(name=group, members=submitter).exists():
        raise PermissionDenied(f"you are not a member of physics group '{group}', so you cannot submit as it")


def _refuse_over_hard(kind, name, limits, usage, n_new):
    queued = limits.get(Resource.QUEUED_JOBS)
    if queued and queued.hard is not None and usage[Resource.QUEUED_JOBS] + n_new > queued.hard:
        raise QuotaExceeded(
            f"quota exceeded: {_whose(kind, name)} {usage[Resource.QUEUED_JOBS]:,} of {queued.hard:,} queued jobs "
            f"and this submission adds {n_new:,}; queued jobs free up as they start running",
            details={"account": name, "resource": Resource.QUEUED_JOBS.value,
                     "used": usage[Resource.QUEUED_JOBS], "limit": queued.hard},
        )  # fmt: skip
    for resource, period in ((Resource.CPU_HOURS_DAY, "today"), (Resource.CPU_HOURS_WEEK, "over the last 7 days")):
        limit = limits.get(resource)
        if limit and limit.hard is not None and usage[resource] >= limit.hard:
            resets = next_reset(resource)
            raise QuotaExceeded(
                f"quota exceeded: {_whose(kind, name, used=True)} {usage[resource]:,} of {limit.hard:,} CPU hours "
                f"{period}; resets at {resets:%Y-%m-%d %H:%M} UTC",
                details={"account": name, "resource": resource.value, "used": usage[resource],
                         "limit": limit.hard, "resets_at": resets},
            )  # fmt: skip


def _whose(kind, name, used=False):
    verb = "have used" if used else "have"
    if kind == AccountKind.USER:
        return f"you ({name}) {verb}"
    return f"group {name} {'has used' if used else 'has'}"


def _over_soft(limits, usage, n_new):
    for resource, limit in limits.items():
        if limit.soft is None or resource == Resource.STORAGE_BYTES:  # storage is checked when data is written
            continue
        projected = usage[resource] + (n_new if resource == Resource.QUEUED_JOBS else 0)
        if projected > limit.soft:
            return True
    return False


def check_storage(*, site, new_file_ids):
    """Registered as a catalog replica check: refuse replicas that take a user over their storage quota."""
    if not new_file_ids:
        return
    owners = set()
    names = DatasetFile.objects.filter(file_id__in=new_file_ids, dataset__name__startswith="user.")
    for name in names.values_list("dataset__name", flat=True).distinct():
        owners.add(owner_of(name))
    users = {user.username: user for user in get_user_model().objects.filter(username__in=owners)}
    for owner in sorted(owners):
        user = users.get(owner)
        total = limits_for(AccountKind.USER, owner, user=user).get(Resource.STORAGE_BYTES)
        _refuse_storage(owner, total, storage_used(owner), "", site)
        _refuse_storage(owner, site_storage_limits(owner, user=user).get(site.name),
                        storage_used(owner, site_name=site.name), f" at {site.name}", site)  # fmt: skip


def _refuse_storage(owner, limit, used, where, site):
    if limit is None or limit.hard is None or used <= limit.hard:
        return
    raise QuotaExceeded(
        f"quota exceeded: user {owner}'s datasets would hold {used:,} bytes{where}, over the {limit.hard:,} byte "
        f"storage quota; erase datasets you no longer need (dq2 erase) and try again",
        details={"account": owner, "resource": Resource.STORAGE_BYTES.value, "used": used,
                 "limit": limit.hard, "site": site.name},
    )  # fmt: skip

"""Reads for quotas: the limits that apply to an account and its current usage."""

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.db.models import Q, Sum
from django.utils import timezone

from datasets.models import DatasetReplica
from datasets.owners import owned_by
from pandamon import roles

from .choices import AccountKind, Resource, SubjectKind
from .models import AccountUsage, DailyUsage, QuotaRule

BASE_USER_ROLE = "user"  # the role every account holder has; its rules are the default for users
GROUP_ROLE = "group"  # the rules for physics groups without an override of their own
WEEK_DAYS = 7


@dataclass(frozen=True)
class Limit:
    soft: int | None
    hard: int | None
    source: str  # which rule gave it: "user alice", "role user", ...


def limits_for(kind, name, *, user=None):
    """{resource: Limit} for an account: its own override, else the most generous default of its roles."""
    own_kind = SubjectKind.USER if kind == AccountKind.USER else SubjectKind.GROUP
    role_names = _role_names(user) if kind == AccountKind.USER else [GROUP_ROLE]
    by_resource = {}
    for rule in _rules(own_kind, name, role_names).filter(site__isnull=True):
        by_resource.setdefault(rule.resource, []).append(rule)
    return {resource: _pick(found, own_kind) for resource, found in by_resource.items()}


def site_storage_limits(name, *, user=None):
    """{site name: Limit} of a user's per-site storage rules (own override, else their roles' defaults)."""
    by_site = {}
    rules = _rules(SubjectKind.USER, name, _role_names(user)).filter(
        resource=Resource.STORAGE_BYTES, site__isnull=False
    )
    for rule in rules.select_related("site"):
        by_site.setdefault(rule.site.name, []).append(rule)
    return {site: _pick(found, SubjectKind.USER) for site, found in by_site.items()}


def _rules(own_kind, name, role_names):
    return QuotaRule.objects.filter(subject_kind=own_kind, subject_name=name) | QuotaRule.objects.filter(
        subject_kind=SubjectKind.ROLE, subject_name__in=role_names
    )


def _role_names(user):
    names = [BASE_USER_ROLE]
    if user is not None:
        names += [role for role in roles.ALL_ROLES if roles.has_role(user, role)]
    return names


def _pick(rules, own_kind):
    own = [rule for rule in rules if rule.subject_kind == own_kind]
    if own:
        return Limit(own[0].soft_limit, own[0].hard_limit, f"{own_kind} {own[0].subject_name}")
    # Several roles: the most generous default wins (no limit beats any limit).
    return Limit(
        _most_generous(rule.soft_limit for rule in rules),
        _most_generous(rule.hard_limit for rule in rules),
        "role " + ", ".join(sorted(rule.subject_name for rule in rules)),
    )


def _most_generous(values):
    values = list(values)
    return None if any(value is None for value in values) else max(values)


def usage_of(kind, name, *, today=None):
    """{resource: amount} of the job resources of an account (running, queued, CPU), from the kept counters.
    Storage is summed apart (storage_used): only the quota report and replica registration need it."""
    today = today or timezone.now().date()
    live = AccountUsage.objects.filter(kind=kind, name=name).first()
    cpu = DailyUsage.objects.filter(kind=kind, name=name, day__gt=today - timedelta(days=WEEK_DAYS)).aggregate(
        week=Sum("cpu_seconds"), today=Sum("cpu_seconds", filter=Q(day=today))
    )
    return {
        Resource.RUNNING_JOBS: live.running_jobs if live else 0,
        Resource.QUEUED_JOBS: live.queued_jobs if live else 0,
        Resource.CPU_HOURS_DAY: round((cpu["today"] or 0) / 3600, 1),
        Resource.CPU_HOURS_WEEK: round((cpu["week"] or 0) / 3600, 1),
    }


def running_jobs(accounts):
    """{(kind, name): running jobs} of several accounts, in one query."""
    wanted = Q(pk__in=[])
    for kind, name in accounts:
        wanted |= Q(kind=kind, name=name)
    return {(kind, name): n for kind, name, n in AccountUsage.objects.filter(wanted).values_list(
        "kind", "name", "running_jobs")}  # fmt: skip


def storage_used(username, *, site_name=None):
    """Bytes of the user's datasets (user.<name>.*) at all sites, or at one, summed over their replicas.

    Computed when asked, from the replica counters the catalog keeps: the prefix is served by
    the name index and a user has few datasets next to the whole catalog."""
    replicas = DatasetReplica.objects.filter(owned_by(username, field="dataset__name"))
    if site_name is not None:
        replicas = replicas.filter(site__name=site_name)
    return replicas.aggregate(total=Sum("bytes_present"))["total"] or 0


def next_reset(resource, now=None):
    """When a CPU quota frees up: the next UTC midnight (a new day; the oldest day leaves the week)."""
    if resource not in (Resource.CPU_HOURS_DAY, Resource.CPU_HOURS_WEEK):
        return None
    now = now or timezone.now()
    return datetime.combine(now.date() + timedelta(days=1), time.min, tzinfo=now.tzinfo)


def daily_history(kind, name, *, days=30):
    """The account's DailyUsage rows of the last `days` days, oldest first."""
    since = timezone.now().date() - timedelta(days=days - 1)
    return DailyUsage.objects.filter(kind=kind, name=name, day__gte=since).order_by("day")


def quota_report(user, *, days=30):
    """Usage against limits for a user and the physics groups they belong to (the quota page and API)."""
    accounts = [(AccountKind.USER, user.username)]
    accounts += [(AccountKind.GROUP, group) for group in user.physics_groups.values_list("name", flat=True)]
    report = []
    for kind, name in accounts:
        limits = limits_for(kind, name, user=user if kind == AccountKind.USER else None)
        usage = usage_of(kind, name)
        usage[Resource.STORAGE_BYTES] = storage_used(name) if kind == AccountKind.USER else 0
        lines = [_line(resource, usage[resource], limits.get(resource)) for resource in Resource]
        if kind == AccountKind.USER:
            lines += _site_storage_lines(name, user)
        report.append(
            {
                "account": {"kind": kind, "name": name},
                "quotas": lines,
                "history": list(
                    daily_history(kind, name, days=days).values(
                        "day", "submitted", "finished", "failed", "cancelled", "cpu_seconds"
                    )
                ),
            }
        )
    return report


def _site_storage_lines(name, user):
    lines = []
    for site_name, limit in sorted(site_storage_limits(name, user=user).items()):
        line = _line(Resource.STORAGE_BYTES, storage_used(name, site_name=site_name), limit)
        lines.append({**line, "site": site_name, "label": f"bytes of your user datasets at {site_name}"})
    return lines


def _line(resource, used, limit):
    return {
        "resource": resource.value,
        "label": resource.label,
        "used": used,
        "soft": limit.soft if limit else None,
        "hard": limit.hard if limit else None,
        "source": limit.source if limit else "no rule: unlimited",
        "resets_at": next_reset(resource),
    }

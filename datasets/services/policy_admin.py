"""Writes of data operators on the policy: placement rules and Tier-2 preferences.

Only data operators and admins change rules and sites' preferences (a site's data operator
holds the data_operator role: sites have no accounts of their own here). Every write is one
transaction and checks everything before writing anything.
"""

import re

from django.db import IntegrityError, transaction

from pandamon import roles
from pandamon.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from sites.models import Cloud, Site

from ..choices import Activity
from ..models import PlacementRule, SitePreference
from ..policy_choices import Media, PreferenceKind, TargetKind
from .policy import CONDITION_KEYS

RULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
PATTERN = re.compile(r"^[A-Za-z0-9_\-.:+*|!@]{1,255}$")
RULE_FIELDS = ("name", "description", "enabled", "order", "conditions", "target", "media", "clouds", "sites",
               "shares", "activity", "priority")  # fmt: skip
RULE_ACTIVITIES = (Activity.DATA_TAKING, Activity.PRODUCTION, Activity.USER)


def check_operator(user, what="change the data distribution policy"):
    if roles.is_admin(user) or roles.has_role(user, roles.DATA_OPERATOR):
        return
    raise PermissionDenied(f"only the {roles.DATA_OPERATOR} role or an admin may {what}")


# -- rules ---------------------------------------------------------------------------------------


def clean_rule(spec, *, partial=False):
    """The valid fields of a rule spec (a dict); InvalidInput names the first bad one."""
    if not isinstance(spec, dict):
        raise InvalidInput("give the rule as an object")
    unknown = sorted(set(spec) - set(RULE_FIELDS))
    if unknown:
        raise InvalidInput(f"unknown rule field {unknown[0]}; known: {', '.join(RULE_FIELDS)}")
    if not partial:
        for required in ("name", "target"):
            if required not in spec:
                raise InvalidInput(f"{required}: required")
    return {key: CLEANERS[key](value) for key, value in spec.items()}


def _name(value):
    if not isinstance(value, str) or not RULE_NAME.match(value):
        raise InvalidInput("name: letters, digits, _ . - (at most 64), starting with a letter or digit")
    return value


def _text(value):
    if not isinstance(value, str) or len(value) > 300:
        raise InvalidInput("description: text of at most 300 characters")
    return value


def _bool(value):
    if not isinstance(value, bool):
        raise InvalidInput("enabled: true or false")
    return value


def _int_in(name, low, high):
    def clean(value):
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise InvalidInput(f"{name}: an integer from {low} to {high}")
        return value

    return clean


def _choice(name, choices):
    def clean(value):
        if value not in choices:
            raise InvalidInput(f"{name}: {value!r} is not one of: {', '.join(choices)}")
        return value

    return clean


def _conditions(value):
    if not isinstance(value, dict):
        raise InvalidInput("conditions: an object of {key: pattern}")
    for key, pattern in value.items():
        if key not in CONDITION_KEYS:
            raise InvalidInput(f"conditions: unknown key {key}; known: {', '.join(CONDITION_KEYS)}")
        if not isinstance(pattern, str) or not PATTERN.match(pattern):
            raise InvalidInput(f"conditions.{key}: a pattern of name characters, * wildcards, | or and ! not")
    return value


def _names_of(name, model):
    def clean(value):
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise InvalidInput(f"{name}: a list of {model.__name__.lower()} names")
        known = set(model.objects.filter(name__in=value).values_list("name", flat=True))
        unknown = [item for item in value if item not in known]
        if unknown:
            raise InvalidInput(f"{name}: unknown {model.__name__.lower()} {unknown[0]}")
        return sorted(set(value))

    return clean


def _shares(value):
    if not isinstance(value, dict):
        raise InvalidInput("shares: an object of {site or cloud: weight}")
    for key, weight in value.items():
        if not isinstance(weight, int | float) or isinstance(weight, bool) or not 0 <= weight <= 1000:
            raise InvalidInput(f"shares.{key}: a weight from 0 to 1000")
    known = set(Site.objects.filter(name__in=list(value)).values_list("name", flat=True))
    known |= set(Cloud.objects.filter(name__in=list(value)).values_list("name", flat=True))
    unknown = [key for key in value if key not in known]
    if unknown:
        raise InvalidInput(f"shares: {unknown[0]} is neither a site nor a cloud")
    return value


CLEANERS = {
    "name": _name, "description": _text, "enabled": _bool, "order": _int_in("order", 0, 10000),
    "conditions": _conditions, "target": _choice("target", TargetKind.values), "media": _choice("media", Media.values),
    "clouds": _names_of("clouds", Cloud), "sites": _names_of("sites", Site), "shares": _shares,
    "activity": _choice("activity", RULE_ACTIVITIES), "priority": _int_in("priority", 1, 5),
}  # fmt: skip


def _check_consistent(rule):
    if rule.target == TargetKind.SITES and not rule.sites:
        raise InvalidInput("sites: a rule with target 'sites' names at least one site")
    if rule.target != TargetKind.SITES and rule.sites:
        raise InvalidInput("sites: only a rule with target 'sites' names sites")


@transaction.atomic
def create_rule(*, user, spec):
    check_operator(user)
    fields = clean_rule(spec)
    rule = PlacementRule(**fields, created_by=user, created_by_name=user.username)
    _check_consistent(rule)
    if PlacementRule.objects.filter(name=rule.name).exists():
        raise Conflict(f"a rule named {rule.name} exists")
    try:
        with transaction.atomic():
            rule.save()
    except IntegrityError as exc:  # a concurrent create of the same name
        raise Conflict(f"a rule named {rule.name} exists") from exc
    return rule


@transaction.atomic
def update_rule(*, user, pk, spec):
    """Change a rule: it applies to datasets registered from now on (and to a retroactive run)."""
    check_operator(user)
    rule = _rule_for_update(pk)
    fields = clean_rule(spec, partial=True)
    if "name" in fields and PlacementRule.objects.filter(name=fields["name"]).exclude(pk=pk).exists():
        raise Conflict(f"a rule named {fields['name']} exists")
    for key, value in fields.items():
        setattr(rule, key, value)
    _check_consistent(rule)
    rule.save()
    return rule


@transaction.atomic
def delete_rule(*, user, pk):
    """Delete a rule and its decisions; the subscriptions it made stay (their rule becomes empty)."""
    check_operator(user)
    _rule_for_update(pk).delete()


def _rule_for_update(pk):
    rule = PlacementRule.objects.select_for_update().filter(pk=pk).first()
    if rule is None:
        raise NotFound(f"no placement rule {pk}")
    return rule


def request_retroactive(*, user, pk, since_days=None):
    """Queue a retroactive run of one rule (a Celery task after commit); returns the rule."""
    check_operator(user, "apply rules retroactively")
    rule = PlacementRule.objects.filter(pk=pk).first()
    if rule is None:
        raise NotFound(f"no placement rule {pk}")
    if not rule.enabled:
        raise Conflict(f"rule {rule.name} is disabled; enable it first")
    if since_days is not None and (not isinstance(since_days, int) or not 1 <= since_days <= 3650):
        raise InvalidInput("since_days: an integer from 1 to 3650")
    from ..tasks import apply_rule_retroactively

    transaction.on_commit(lambda: apply_rule_retroactively.delay(rule.pk, since_days))
    return rule


# -- Tier-2 preferences --------------------------------------------------------------------------


@transaction.atomic
def add_preference(*, user, site_name, kind, pattern):
    check_operator(user, "change a site's data preferences")
    site = Site.objects.filter(name=site_name).first()
    if site is None:
        raise NotFound(f"unknown site '{site_name}'")
    if kind not in PreferenceKind.values:
        raise InvalidInput(f"kind: {kind!r} is not one of: {', '.join(PreferenceKind.values)}")
    if not isinstance(pattern, str) or not PATTERN.match(pattern):
        raise InvalidInput("pattern: name characters and * wildcards (| or, ! not), at most 255")
    preference, created = SitePreference.objects.get_or_create(
        site=site, kind=kind, pattern=pattern, defaults={"created_by_name": user.username}
    )
    if not created:
        raise Conflict(f"{site.name} already prefers {kind} {pattern}")
    return preference


@transaction.atomic
def remove_preference(*, user, pk):
    check_operator(user, "change a site's data preferences")
    deleted, _ = SitePreference.objects.filter(pk=pk).delete()
    if not deleted:
        raise NotFound(f"no preference {pk}")

"""Roles are Django groups (created by a migration); superusers hold every role."""

from functools import lru_cache

PRODUCTION_MANAGER = "production_manager"
DATA_OPERATOR = "data_operator"
SHIFTER = "shifter"
ALL_ROLES = (PRODUCTION_MANAGER, DATA_OPERATOR, SHIFTER)


def has_role(user, role):
    if user is None or not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    return role in _role_names(user)


def _role_names(user):
    # Cached on the user object for the request: a page checks roles several times.
    cached = getattr(user, "_pandamon_roles", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True))
        user._pandamon_roles = cached
    return cached


def is_admin(user):
    return bool(user and user.is_authenticated and (user.is_superuser or user.is_staff))


@lru_cache(maxsize=1)
def role_descriptions():
    return {
        PRODUCTION_MANAGER: "defines production tasks and submits managed jobs; may kill any managed job",
        DATA_OPERATOR: "manages subscriptions, production storage and transfers",
        SHIFTER: "acknowledges alarms and kills misbehaving jobs",
    }

"""Who may write which dataset.

User datasets (`user.<name>.*`) belong to that user; only the user, a data
operator or an admin may write them. Every other dataset is official data,
written by production managers, data operators and admins.
"""

from pandamon import roles
from pandamon.errors import PermissionDenied

from ..naming import parse
from ..owners import owner_of


def check_may_write(user, name):
    if roles.is_admin(user) or roles.has_role(user, roles.DATA_OPERATOR):
        return
    if parse(name).category == "user":
        owner = owner_of(name)
        if user.is_authenticated and owner == user.username:
            return
        raise PermissionDenied(f"dataset {name} belongs to user '{owner}'; only they or a data operator may write it")
    if roles.has_role(user, roles.PRODUCTION_MANAGER):
        return
    raise PermissionDenied(
        f"writing {name} needs the {roles.PRODUCTION_MANAGER} or {roles.DATA_OPERATOR} role "
        f"(users write only their own user.{user.username}.* datasets)"
    )

"""Who owns a user dataset: `user.<name>.*` belongs to the account <name>.

Account names may contain dots (Django allows them, and many sites use first.last), so the
owner is not simply the second field: `user.john.doe.ntuple` belongs to john.doe when that
account exists, and to john otherwise. The longest existing account name wins, and the
prefix filters below leave out the datasets of longer names for the shorter one, so john
neither writes nor is charged for john.doe's data.
"""

from django.contrib.auth import get_user_model
from django.db.models import Q

USER_SERIES = "user"


def owner_of(name):
    """The account name owning dataset `name`, or "" for official data (not a user dataset).

    For a user dataset whose owner has no account, the second field (what the name claims)."""
    parts = name.split(".")
    if len(parts) < 2 or parts[0].lower() != USER_SERIES:
        return ""
    # Every prefix of the fields after "user." that leaves at least one field of its own.
    candidates = [".".join(parts[1:end]) for end in range(2, len(parts))]
    if len(candidates) > 1:
        existing = set(get_user_model().objects.filter(username__in=candidates).values_list("username", flat=True))
        for candidate in reversed(candidates):
            if candidate in existing:
                return candidate
    return parts[1]


def owned_by(username, field="name"):
    """A Q for the datasets (through `field`, their name) owned by `username`."""
    owned = Q(**{f"{field}__startswith": f"{USER_SERIES}.{username}."})
    longer = get_user_model().objects.filter(username__startswith=f"{username}.").values_list("username", flat=True)
    for other in longer:
        owned &= ~Q(**{f"{field}__startswith": f"{USER_SERIES}.{other}."})
    return owned

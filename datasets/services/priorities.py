"""Transfer priorities by activity: the queue is claimed activity rank by rank (data taking first).

Within a rank, transfers go by their own priority (1-5, from the subscription), then age.
Ranks are rows of ActivityPriority (data operators change them); an activity without a row
has its default rank. A lower rank number is claimed first; activities may share a rank.
"""

from django.db import transaction
from django.db.models import Q

from pandamon.errors import InvalidInput

from ..choices import Activity
from ..models import ActivityPriority
from .policy_admin import check_operator

DEFAULT_RANKS = {
    Activity.DATA_TAKING: 1,  # detector data must leave the Tier-0 before its disk buffer fills
    Activity.DISPATCH: 2,  # jobs are waiting for these files
    Activity.PRODUCTION: 3,
    Activity.ARCHIVAL: 3,
    Activity.USER: 4,
}
MAX_RANK = 9


def ranks():
    """{activity: rank} of every activity."""
    current = {activity: DEFAULT_RANKS[activity] for activity in Activity.values}
    current.update(ActivityPriority.objects.values_list("activity", "rank"))
    return current


def rank_groups(current=None):
    """[[activities of the best rank], [the next], ...]."""
    current = current or ranks()
    return [sorted(a for a, r in current.items() if r == rank) for rank in sorted(set(current.values()))]


@transaction.atomic
def set_ranks(*, user, changes):
    """Change the ranks of some activities ({activity: rank}); all or none. Returns the new ranks."""
    check_operator(user, "change transfer priorities")
    if not isinstance(changes, dict) or not changes:
        raise InvalidInput("give {activity: rank, ...}")
    for activity, rank in changes.items():
        if activity not in Activity.values:
            raise InvalidInput(f"{activity!r} is not an activity: {', '.join(Activity.values)}")
        if not isinstance(rank, int) or isinstance(rank, bool) or not 1 <= rank <= MAX_RANK:
            raise InvalidInput(f"{activity}: the rank is an integer from 1 (first) to {MAX_RANK}")
    for activity, rank in changes.items():
        ActivityPriority.objects.update_or_create(
            activity=activity, defaults={"rank": rank, "updated_by_name": user.username}
        )
    return ranks()


def ahead_of(request_row, current=None):
    """A Q for the queued transfers an agent claims before this one (activity rank, priority, age)."""
    current = current or ranks()
    rank = current[request_row["activity"]]
    better = [a for a, r in current.items() if r < rank]
    same = [a for a, r in current.items() if r == rank]
    return (
        Q(activity__in=better)
        | Q(activity__in=same, priority__gt=request_row["priority"])
        | Q(activity__in=same, priority=request_row["priority"], id__lt=request_row["id"])
    )

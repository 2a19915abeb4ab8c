"""The factory's decision: how many pilots a site gets in one cycle, in each situation."""

import pytest

from sites.factory.decide import Caps, SiteLoad, pilots_to_submit, share_room, total_room

NO_CAPS = Caps(max_queued_per_site=0, max_per_cycle=0, max_pilots_per_site=0)


def load(**values):
    defaults = {"status": "online", "activated": 0, "running_jobs": 0, "max_running_jobs": 0,
                "queued_pilots": 0, "running_pilots": 0}  # fmt: skip
    return SiteLoad(**{**defaults, **values})


@pytest.mark.parametrize(
    ("site", "caps", "expected", "reason"),
    [
        # No work: nothing, whatever the caps.
        (load(activated=0), NO_CAPS, 0, "no activated jobs"),
        # Offline: nothing, even with work waiting.
        (load(status="offline", activated=50), NO_CAPS, 0, "site is offline"),
        # Work and no limits: one pilot per activated job.
        (load(activated=7), NO_CAPS, 7, "7 activated jobs, 0 queued pilots"),
        # brokeroff and test sites still run the jobs they have.
        (load(status="brokeroff", activated=2), NO_CAPS, 2, "2 activated jobs"),
        (load(status="test", activated=1), NO_CAPS, 1, "1 activated job,"),
        # Queued pilots will take activated jobs: only the rest get new pilots.
        (load(activated=7, queued_pilots=5), NO_CAPS, 2, "7 activated jobs, 5 queued pilots"),
        (load(activated=3, queued_pilots=5), NO_CAPS, 0, "3 activated jobs, 5 queued pilots"),
        # The site's limit counts every job held at the site and every pilot of ours.
        (load(activated=100, running_jobs=8, max_running_jobs=10), NO_CAPS, 2, "site limit of 10"),
        (load(activated=100, running_jobs=8, queued_pilots=2, max_running_jobs=10), NO_CAPS, 0, "site limit"),
        # Idle running pilots hold slots too (more pilots than jobs held).
        (load(activated=100, running_jobs=1, running_pilots=6, max_running_jobs=10), NO_CAPS, 4, "site limit"),
        (load(activated=100, running_jobs=12, max_running_jobs=10), NO_CAPS, 0, "site limit"),
        # Factory caps.
        (load(activated=100), Caps(max_queued_per_site=10, max_per_cycle=0), 10, "at most 10 queued pilots per site"),
        (load(activated=100, queued_pilots=4), Caps(max_queued_per_site=10, max_per_cycle=0), 6, "at most 10 queued pilots per site"),
        (load(activated=100), Caps(max_queued_per_site=0, max_per_cycle=5), 5, "at most 5 new pilots per cycle"),
        (load(activated=100, running_pilots=18), Caps(max_queued_per_site=0, max_per_cycle=0, max_pilots_per_site=20),
         2, "20 pilots per site"),
        # The tightest limit wins and is named.
        (load(activated=4, max_running_jobs=100), Caps(max_queued_per_site=10, max_per_cycle=5), 4, "4 activated"),
    ],
)  # fmt: skip
def test_pilots_to_submit(site, caps, expected, reason):
    decision = pilots_to_submit(site, caps)
    assert decision.submit == expected
    assert reason in decision.reason


def test_never_more_pilots_than_the_site_limit_whatever_the_load():
    for running_jobs in range(0, 15):
        for queued in range(0, 12):
            for running_pilots in range(0, 12):
                site = load(activated=50, running_jobs=running_jobs, max_running_jobs=10, queued_pilots=queued,
                            running_pilots=running_pilots)  # fmt: skip
                submit = pilots_to_submit(site, NO_CAPS).submit
                assert submit >= 0
                if submit:
                    assert max(running_jobs, running_pilots) + queued + submit <= 10


def test_total_room():
    assert total_room(0, 500) is None
    assert total_room(10, 4) == 6
    assert total_room(10, 14) == 0


def test_share_room_takes_turns():
    assert share_room([5, 5], None) == [5, 5]
    assert share_room([5, 5], 3) == [2, 1]
    assert share_room([0, 4, 1], 4) == [0, 3, 1]
    assert share_room([2, 2], 0) == [0, 0]
    assert share_room([1, 1], 10) == [1, 1]

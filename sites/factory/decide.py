"""How many pilots a factory submits to a site in one cycle: pure functions, no I/O.

A pilot runs one job at a time, so pilots are sized against jobs: enough queued pilots
to pick up the site's activated jobs, never more pilots than the site may run jobs,
and never more than the factory's own caps allow.
"""

from dataclasses import dataclass

from sites.choices import SiteStatus


@dataclass(frozen=True)
class SiteLoad:
    """What the factory knows about one site at the start of a cycle."""

    status: str
    activated: int  # jobs a pilot could get now
    running_jobs: int  # jobs held by any pilot (sent, starting, running), this factory's or not
    max_running_jobs: int  # the site's limit, 0 = none
    queued_pilots: int  # this factory's pilots not started yet
    running_pilots: int  # this factory's started pilots


@dataclass(frozen=True)
class Caps:
    """The factory's own limits; 0 means no limit."""

    max_queued_per_site: int = 10
    max_per_cycle: int = 5
    max_pilots_per_site: int = 0


@dataclass(frozen=True)
class Decision:
    submit: int
    reason: str


def pilots_to_submit(load: SiteLoad, caps: Caps) -> Decision:
    """The number of pilots to submit to the site now, and the limit that decided it.

    The factory's cap over all its sites is applied after, by share_room()."""
    if load.status == SiteStatus.OFFLINE:
        return Decision(0, "site is offline")
    if load.activated <= 0:
        return Decision(0, "no activated jobs")
    # Queued pilots will each take one of the activated jobs; only the rest need new pilots.
    need = (load.activated - load.queued_pilots, f"{_plural(load.activated, 'activated job')}, "
            f"{_plural(load.queued_pilots, 'queued pilot')}")  # fmt: skip
    limits = [need]
    if load.max_running_jobs:
        # Our pilots may all be busy (running_jobs counts their jobs) or idle (running_pilots):
        # the larger of the two never undercounts the slots they hold.
        held = max(load.running_jobs, load.running_pilots) + load.queued_pilots
        limits.append((load.max_running_jobs - held, f"site limit of {load.max_running_jobs} running jobs"))
    if caps.max_queued_per_site:
        limits.append((caps.max_queued_per_site - load.queued_pilots,
                       f"at most {caps.max_queued_per_site} queued pilots per site"))  # fmt: skip
    if caps.max_pilots_per_site:
        ours = load.queued_pilots + load.running_pilots
        limits.append((caps.max_pilots_per_site - ours, f"at most {caps.max_pilots_per_site} pilots per site"))
    if caps.max_per_cycle:
        limits.append((caps.max_per_cycle, f"at most {caps.max_per_cycle} new pilots per cycle"))
    room, reason = min(limits, key=lambda limit: limit[0])  # the first of equals: the need, if it is one
    return Decision(max(0, room), reason)


def total_room(max_total: int, active_pilots: int) -> int | None:
    """What is left of the factory's cap over all sites (None when it has none)."""
    return max(0, max_total - active_pilots) if max_total else None


def _plural(count, noun):
    return f"{count} {noun}{'' if count == 1 else 's'}"


def share_room(wanted, room):
    """Split the factory's total room between sites wanting `wanted` pilots, one pilot at a time in
    turn (in the order given), so one busy site cannot take it all. None = no total cap."""
    if room is None:
        return list(wanted)
    shares = [0] * len(wanted)
    while room > 0 and any(share < want for share, want in zip(shares, wanted, strict=True)):
        for index, want in enumerate(wanted):
            if room > 0 and shares[index] < want:
                shares[index] += 1
                room -= 1
    return shares

"""The retry module (PanDA's retryModule): should a failed job get another attempt, and with what?

The RetryRule table (PanDA's RETRYERRORS) is tried in order; the first active rule whose error
source, code, diagnostic pattern and scope match the job decides:

* no_retry: no new attempt;
* limit_retry: retried while the job has had fewer than `parameter` attempts (capped by max_attempt);
* increase_memory / increase_memory_xtimes: retried with more min_ram_count (MB step / factor);
* increase_walltime: retried with more max_walltime (seconds step).

A passive (inactive) rule that matches changes nothing; the decision's text says what it would
have done. Without a matching rule the defaults decide: system errors (DEFAULT_RETRIED) are
retried up to the job's max_attempt; every other error, the payload's included, is not.
Which payload exit codes are worth a retry is the rule table's business (docs/retries.md).
"""

import logging
import math
import re
from dataclasses import dataclass, field

from ..errorcodes import ERROR_SOURCES
from ..models import RetryRule

logger = logging.getLogger(__name__)
SOURCES = {source.component: source for source in ERROR_SOURCES}
Action = RetryRule.Action

# Retried by default, up to the job's max_attempt: errors of the system, not of the payload.
DEFAULT_RETRIED = {
    "job_dispatcher": {
        100: "lost heartbeat",
        102: "sent timeout",
    },
    # Pilot stage-in/out failures that usually pass on another try or at another site.
    "pilot": {
        1099: "stage-in failed",
        1137: "stage-out failed",
        1151: "stage-in timed out",
        1152: "stage-out timed out",
        1153: "lost job not finished",
    },
}
DEFAULT_MEMORY_STEP_MB = 1000
DEFAULT_MEMORY_FACTOR = 2.0
DEFAULT_WALLTIME_STEP_S = 3600


@dataclass
class Decision:
    retry: bool
    why: str  # for the state log: "rule 7: increase_memory +1000 MB (2000 → 3000 MB)", "default: lost heartbeat"
    overrides: dict = field(default_factory=dict)  # requirements of the new attempt
    rule: RetryRule | None = None


def active_rules():
    """Every rule, in order (passive ones too: they are reported)."""
    return list(RetryRule.objects.all())


def decide(job, rules=None):
    """The retry decision for a failed job (attempt limits included)."""
    rules = active_rules() if rules is None else rules
    passive = []
    for rule in rules:
        if not matches(rule, job):
            continue
        if not rule.active:
            passive.append(rule)
            continue
        decision = _apply(rule, job)
        break
    else:
        decision = _default(job)
    if passive:
        would = "; ".join(f"passive rule {rule.pk} would have applied {_describe(rule)}" for rule in passive)
        decision.why = f"{decision.why}; {would}"
    return decision


def matches(rule, job):
    source = SOURCES.get(rule.error_source)
    if source is None:
        return False
    code, diag = getattr(job, source.code) or 0, getattr(job, source.diag) or ""
    if rule.error_code is None:
        if not code and not diag:
            return False
    elif code != rule.error_code:
        return False
    if rule.prod_source_label and rule.prod_source_label != job.prod_source_label:
        return False
    if rule.sw_release and rule.sw_release != job.sw_release:
        return False
    if rule.diag_pattern:
        try:
            return re.search(rule.diag_pattern, diag) is not None
        except re.error:
            logger.warning("retry rule %s has an invalid pattern %r; skipped", rule.pk, rule.diag_pattern)
            return False
    return True


def _apply(rule, job):
    label = f"rule {rule.pk}: {_describe(rule)}"
    if rule.action == Action.NO_RETRY:
        return Decision(False, label, rule=rule)
    limit = job.max_attempt
    if rule.action == Action.LIMIT_RETRY and rule.parameter is not None:
        limit = min(limit, int(rule.parameter))
    if job.attempt_nr >= limit:
        return Decision(False, f"{label}; attempt {job.attempt_nr} of at most {limit}", rule=rule)
    overrides, change = _requirements(rule, job)
    return Decision(True, f"{label}{change}; attempt {job.attempt_nr + 1} of at most {limit}", overrides, rule)


def _requirements(rule, job):
    """(overrides for the new attempt, text saying what changed)."""
    if rule.action in (Action.INCREASE_MEMORY, Action.INCREASE_MEMORY_XTIMES):
        # What the job asked for, or what it used when that was more (max_rss is in kB).
        base = max(job.min_ram_count, math.ceil((job.max_rss or 0) / 1024))
        if rule.action == Action.INCREASE_MEMORY:
            new = base + int(rule.parameter or DEFAULT_MEMORY_STEP_MB)
        else:
            new = max(math.ceil(base * (rule.parameter or DEFAULT_MEMORY_FACTOR)), base + 1)
        return {"min_ram_count": new}, f" ({base} → {new} MB)"
    if rule.action == Action.INCREASE_WALLTIME:
        # What the job asked for or, when it asked for nothing, how long it ran before it was stopped.
        base = job.max_walltime or _ran_for(job)
        new = base + int(rule.parameter or DEFAULT_WALLTIME_STEP_S)
        return {"max_walltime": new}, f" ({base} → {new} s)"
    return {}, ""


def _ran_for(job):
    if job.start_time and job.end_time and job.end_time > job.start_time:
        return int((job.end_time - job.start_time).total_seconds())
    return 0


def _describe(rule):
    p = rule.parameter
    match rule.action:
        case Action.LIMIT_RETRY:
            return f"limit_retry {int(p)}" if p is not None else "limit_retry (max_attempt)"
        case Action.INCREASE_MEMORY:
            return f"increase_memory +{int(p or DEFAULT_MEMORY_STEP_MB)} MB"
        case Action.INCREASE_MEMORY_XTIMES:
            return f"increase_memory_xtimes ×{p or DEFAULT_MEMORY_FACTOR:g}"
        case Action.INCREASE_WALLTIME:
            return f"increase_walltime +{int(p or DEFAULT_WALLTIME_STEP_S)} s"
    return str(rule.action)


def _default(job):
    for component, codes in DEFAULT_RETRIED.items():
        source = SOURCES[component]
        code = getattr(job, source.code)
        if code in codes:
            what = f"default: {component} error {code} ({codes[code]}) is a system error"
            if job.attempt_nr >= job.max_attempt:
                return Decision(False, f"{what}; attempt {job.attempt_nr} of at most {job.max_attempt}")
            return Decision(True, f"{what}; attempt {job.attempt_nr + 1} of at most {job.max_attempt}")
    error = first_error(job)
    if error is None:
        return Decision(False, "default: no error code to judge by")
    return Decision(False, f"default: {error} is not a known transient error and no retry rule matches")


def first_error(job):
    for source in ERROR_SOURCES:
        code = getattr(job, source.code)
        if code:
            return f"{source.component} error {code}"
    return None

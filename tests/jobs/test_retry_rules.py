"""The retry module: rules decide whether (and how) a failed job gets a new attempt."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from jobs.choices import JobStatus
from jobs.models import Job, JobReport, JobStatusLog, RetryRule
from jobs.services import adder, retry, retry_rules, watchers

from ..factories import JobFactory, SiteFactory

pytestmark = pytest.mark.django_db
Action = RetryRule.Action


def failing(**fields):
    """A holding job whose pilot reported a failure; the Adder fails it and asks the retry module."""
    fields.setdefault("computing_site", SiteFactory(name="CERN"))
    fields.setdefault("max_attempt", 3)
    job = JobFactory(status=JobStatus.HOLDING, **fields)
    JobReport.objects.create(job=job, reported_state="failed", received_at=timezone.now())
    assert adder.finalize_job(job.pk) == JobStatus.FAILED
    job.refresh_from_db()
    return job


def child_of(job):
    return Job.objects.filter(parent_id=job.pk).first()


def decision_of(job):
    """The reason of the job's failure in its state log, where the retry decision is recorded."""
    return JobStatusLog.objects.filter(job=job, new_status=JobStatus.FAILED).get().reason


def rule(**fields):
    return RetryRule.objects.create(**fields)


def seeded(source, code):
    return RetryRule.objects.get(error_source=source, error_code=code)


def test_the_default_rules_are_seeded():
    rows = list(RetryRule.objects.values_list("position", "error_source", "error_code", "action", "active"))
    assert rows == [
        (5, "pilot", 1150, Action.NO_RETRY, True),  # jobs/0009: looping jobs (docs/job-control.md)
        (10, "pilot", 1099, Action.NO_RETRY, True),
        (20, "exe", 137, Action.INCREASE_MEMORY, True),
        (30, "pilot", 1204, Action.INCREASE_WALLTIME, True),
        (40, "exe", 75, Action.LIMIT_RETRY, True),
    ]
    assert all(comment for comment in RetryRule.objects.values_list("comment", flat=True))


def test_increase_memory_retries_with_more_memory_than_asked_for_or_used():
    job = failing(exe_error_code=137, min_ram_count=2000, max_rss=2_500_000)  # used 2442 MB
    new = child_of(job)
    assert (new.attempt_nr, new.status, new.computing_site_id, new.min_ram_count) == (2, "defined", None, 3442)
    number = seeded("exe", 137).pk
    assert decision_of(job).endswith(
        f"; retried as {new.pk} (rule {number}: increase_memory +1000 MB (2442 → 3442 MB); attempt 2 of at most 3)"
    )
    creation = JobStatusLog.objects.get(job=new)
    assert creation.actor == "retry-module" and creation.reason.startswith(f"retry of {job.pk} (rule {number}:")


def test_increase_memory_by_a_factor():
    rule(position=1, error_source="exe", error_code=137, action=Action.INCREASE_MEMORY_XTIMES, parameter=1.5)
    job = failing(exe_error_code=137, min_ram_count=2000)
    assert child_of(job).min_ram_count == 3000
    assert "increase_memory_xtimes ×1.5 (2000 → 3000 MB)" in decision_of(job)


def test_increase_walltime_from_what_was_asked_or_how_long_it_ran():
    asked = failing(pilot_error_code=1204, max_walltime=7200)
    assert child_of(asked).max_walltime == 10800
    start = timezone.now() - timedelta(hours=2)
    ran = failing(pilot_error_code=1204, start_time=start, end_time=start + timedelta(seconds=5000))
    assert child_of(ran).max_walltime == 8600
    assert "increase_walltime +3600 s (5000 → 8600 s)" in decision_of(ran)


def test_no_retry_and_payload_errors_are_not_retried_by_default():
    hopeless = rule(error_source="exe", error_code=42, action=Action.NO_RETRY, comment="bad configuration")
    job = failing(exe_error_code=42)
    assert child_of(job) is None
    assert decision_of(job) == f"pilot reported failed; not retried (rule {hopeless.pk}: no_retry)"
    payload = failing(exe_error_code=1, exe_error_diag="ZeroDivisionError")
    assert child_of(payload) is None
    assert decision_of(payload).endswith(
        "not retried (default: exe error 1 is not a known transient error and no retry rule matches)"
    )


def test_a_transient_payload_code_is_retried_up_to_max_attempt():
    job = failing(exe_error_code=75, max_attempt=2)
    new = child_of(job)
    assert new.attempt_nr == 2 and new.min_ram_count == job.min_ram_count
    assert "limit_retry (max_attempt); attempt 2 of at most 2" in decision_of(job)
    last = failing(exe_error_code=75, attempt_nr=2, max_attempt=2)
    assert child_of(last) is None
    assert decision_of(last).endswith("limit_retry (max_attempt); attempt 2 of at most 2)")


def test_limit_retry_caps_attempts_below_max_attempt():
    limit = rule(error_source="pilot", error_code=1137, action=Action.LIMIT_RETRY, parameter=2)
    first = failing(pilot_error_code=1137, max_attempt=5)
    assert child_of(first).attempt_nr == 2
    second = failing(pilot_error_code=1137, attempt_nr=2, max_attempt=5)
    assert child_of(second) is None
    assert decision_of(second).endswith(f"not retried (rule {limit.pk}: limit_retry 2; attempt 2 of at most 2)")


def test_the_first_matching_rule_in_position_order_decides():
    late = rule(position=50, error_source="exe", error_code=3, action=Action.NO_RETRY)
    early = rule(position=5, error_source="exe", error_code=3, action=Action.LIMIT_RETRY)
    job = failing(exe_error_code=3)
    assert child_of(job) is not None and f"rule {early.pk}:" in decision_of(job)
    RetryRule.objects.filter(pk=late.pk).update(position=1)
    again = failing(exe_error_code=3)
    assert child_of(again) is None and f"rule {late.pk}: no_retry" in decision_of(again)


def test_diag_pattern_and_any_code_rules():
    # The seeded rule: a stage-in failure for a file that is gone is hopeless...
    gone = failing(pilot_error_code=1099, pilot_error_diag="copy failed: No such file or directory")
    assert child_of(gone) is None and f"rule {seeded('pilot', 1099).pk}: no_retry" in decision_of(gone)
    # ... another stage-in failure is transient: retried by default.
    flaky = failing(pilot_error_code=1099, pilot_error_diag="connection reset by peer")
    assert child_of(flaky) is not None
    assert "default: pilot error 1099 (stage-in failed) is a system error; attempt 2 of at most 3" in decision_of(flaky)
    # A rule without a code matches any error of its source whose diagnostic matches.
    rule(position=1, error_source="exe", diag_pattern=r"(?i)temporarily unavailable", action=Action.LIMIT_RETRY)
    assert child_of(failing(exe_error_code=8, exe_error_diag="DB Temporarily Unavailable")) is not None
    assert child_of(failing(exe_error_code=8, exe_error_diag="syntax error")) is None


def test_scope_by_label_and_release():
    rule(position=1, error_source="exe", error_code=9, action=Action.LIMIT_RETRY, prod_source_label="managed")
    rule(position=2, error_source="exe", error_code=9, action=Action.LIMIT_RETRY, sw_release="Atlas-17.0.1")
    assert child_of(failing(exe_error_code=9, prod_source_label="managed")) is not None
    assert child_of(failing(exe_error_code=9, prod_source_label="user", sw_release="Atlas-17.0.1")) is not None
    assert child_of(failing(exe_error_code=9, prod_source_label="user", sw_release="Atlas-16.6.0")) is None


def test_a_passive_rule_changes_nothing_but_says_what_it_would_have_done():
    passive = rule(position=1, error_source="pilot", error_code=1137, action=Action.NO_RETRY, active=False)
    job = failing(pilot_error_code=1137)
    assert child_of(job) is not None
    assert decision_of(job).endswith(f"; passive rule {passive.pk} would have applied no_retry)")


def test_system_errors_are_retried_by_default_within_max_attempt():
    site = SiteFactory(name="SLOW", heartbeat_timeout_s=60)
    ago = timezone.now() - timedelta(seconds=600)
    lost = JobFactory(computing_site=site, status=JobStatus.RUNNING, modification_time=ago, max_attempt=2)
    last = JobFactory(computing_site=site, status=JobStatus.RUNNING, modification_time=ago, attempt_nr=2,
                      max_attempt=2)  # fmt: skip
    watchers.fail_lost_heartbeats()
    new = child_of(lost)
    assert (new.attempt_nr, new.computing_site_id) == (2, None)
    assert decision_of(lost).endswith(
        f"retried as {new.pk} (default: job_dispatcher error 100 (lost heartbeat) is a system error; "
        "attempt 2 of at most 2)"
    )
    assert child_of(last) is None and "attempt 2 of at most 2)" in decision_of(last)
    for code in (1137, 1151, 1152, 1153):
        assert child_of(failing(pilot_error_code=code)) is not None, code


def test_killed_jobs_and_retried_jobs_are_left_alone():
    site = SiteFactory(name="SLOW", heartbeat_timeout_s=60)
    ago = timezone.now() - timedelta(seconds=600)
    killed = JobFactory(computing_site=site, status=JobStatus.RUNNING, modification_time=ago,
                        command_to_pilot="tobekilled")  # fmt: skip
    watchers.fail_lost_heartbeats()
    assert child_of(killed) is None and decision_of(killed).endswith("not retried (the job was being killed)")
    job = failing(pilot_error_code=1137)
    assert retry.retry_if_eligible(job) is None  # already retried once
    assert Job.objects.filter(parent_id=job.pk).count() == 1


def test_decide_without_database_rules():
    job = JobFactory.build(status=JobStatus.FAILED, exe_error_code=137, min_ram_count=0, max_rss=None, max_attempt=3)
    decision = retry_rules.decide(job, rules=[RetryRule(pk=9, error_source="exe", error_code=137,
                                                        action=Action.INCREASE_MEMORY, parameter=500)])  # fmt: skip
    assert (decision.retry, decision.overrides) == (True, {"min_ram_count": 500})
    assert retry_rules.decide(job, rules=[]).retry is False


def test_rule_validation():
    with pytest.raises(ValidationError, match="regular expression"):
        RetryRule(error_source="exe", action=Action.NO_RETRY, diag_pattern="([").full_clean()
    with pytest.raises(ValidationError, match="whole number"):
        RetryRule(error_source="exe", action=Action.LIMIT_RETRY, parameter=1.5).full_clean()
    with pytest.raises(ValidationError, match="factor above 1"):
        RetryRule(error_source="exe", action=Action.INCREASE_MEMORY_XTIMES, parameter=0.5).full_clean()
    with pytest.raises(ValidationError, match="no parameter"):
        RetryRule(error_source="exe", action=Action.NO_RETRY, parameter=3).full_clean()
    RetryRule(error_source="exe", error_code=1, action=Action.INCREASE_MEMORY, parameter=500).full_clean()


def test_retry_rules_admin(client):
    from tests.factories import UserFactory

    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    page = client.get("/admin/jobs/retryrule/")
    assert page.status_code == 200 and b"increase_memory" in page.content
    number = seeded("exe", 75).pk
    assert client.get(f"/admin/jobs/retryrule/{number}/change/").status_code == 200

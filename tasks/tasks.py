"""Celery tasks of the tasks app: thin wrappers around services."""

from celery import shared_task

from pandamon.workers import recorded_run

from .services import creation, rollup


@shared_task(name="tasks.roll_up", ignore_result=True)
def roll_up():
    """Fold the job state log into task counters and states."""
    with recorded_run(roll_up.name) as counts:
        counts["changes"] = rollup.roll_up()


@shared_task(name="tasks.follow_input", ignore_result=True)
def follow_input():
    """Make jobs for files added to the input of tasks that follow their input."""
    with recorded_run(follow_input.name) as counts:
        counts.update(creation.follow_inputs())

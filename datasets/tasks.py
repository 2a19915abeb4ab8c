"""Celery tasks of the catalog and the data flow: thin wrappers around services."""

import socket
import time
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from pandamon.workers import recorded_run

from .services import callbacks, catalog, consistency, deletion, policy, subscriptions, transfers


@shared_task(name="datasets.purge_erased_datasets", ignore_result=True)
def purge_erased_datasets():
    """Delete, in batches, datasets erased longer ago than the grace period (with their files' memberships)."""
    with recorded_run(purge_erased_datasets.name) as counts:
        counts.update(catalog.purge_erased_datasets())


@shared_task(name="datasets.evaluate_subscriptions", ignore_result=True)
def evaluate_subscriptions():
    """Queue transfers of what subscribed sites lack; safe to run concurrently (rows are skip-locked)."""
    with recorded_run(evaluate_subscriptions.name) as counts:
        counts.update(subscriptions.evaluate_subscriptions())


@shared_task(name="datasets.run_transfers", ignore_result=True)
def run_transfers():
    """Claim and copy batches of queued transfers for up to TRANSFER_RUN_SECONDS."""
    deadline = time.monotonic() + settings.PANDA["TRANSFER_RUN_SECONDS"]
    agent = f"celery@{socket.gethostname()}"
    with recorded_run(run_transfers.name) as counts:
        while time.monotonic() < deadline:
            result = transfers.transfer_batch(agent=agent)
            for key, value in result.items():
                counts[key] = counts.get(key, 0) + value
            if not result["claimed"]:
                break


@shared_task(name="datasets.deliver_callbacks", ignore_result=True)
def deliver_callbacks():
    with recorded_run(deliver_callbacks.name) as counts:
        counts.update(callbacks.deliver_due_callbacks())


@shared_task(name="datasets.reap_expired_replicas", ignore_result=True)
def reap_expired_replicas():
    with recorded_run(reap_expired_replicas.name) as counts:
        counts.update(deletion.reap_expired_replicas())


@shared_task(name="datasets.check_storage_consistency", ignore_result=True)
def check_storage_consistency():
    """Compare every site's directory storage with its replica catalog (report only)."""
    with recorded_run(check_storage_consistency.name) as counts:
        counts.update(consistency.check_all_sites())


@shared_task(name="datasets.apply_rule_retroactively", ignore_result=True)
def apply_rule_retroactively(rule_id, since_days=None):
    """A placement rule on the datasets registered before it (those it has not decided yet)."""
    since = timezone.now() - timedelta(days=since_days) if since_days else None
    with recorded_run(apply_rule_retroactively.name) as counts:
        counts.update(policy.apply_retroactively(rule_ids={rule_id}, since=since))


@shared_task(name="datasets.reevaluate_placements", ignore_result=True)
def reevaluate_placements():
    """Placement decisions that waited for a dataset's first replica, evaluated again."""
    with recorded_run(reevaluate_placements.name) as counts:
        counts.update(policy.reevaluate_waiting())


@shared_task(name="datasets.propose_deletions", ignore_result=True)
def propose_deletions():
    """Propose obsolete replicas (expired, superseded) for deletion; data operators approve them."""
    from .services import cleaning

    with recorded_run(propose_deletions.name) as counts:
        counts.update(cleaning.propose())
        # Approvals enqueue execute_deletions on commit; this hourly pass also takes any whose task was lost.
        counts.update(cleaning.execute())


@shared_task(name="datasets.execute_deletions", ignore_result=True)
def execute_deletions():
    """Delete the approved proposals (each re-checked for claims and subscriptions)."""
    from .services import cleaning

    with recorded_run(execute_deletions.name) as counts:
        counts.update(cleaning.execute())


@shared_task(name="datasets.recount_user_areas", ignore_result=True)
def recount_user_areas():
    """Recount the sized user areas from the replica catalog (sees deletions)."""
    from .services import user_areas

    with recorded_run(recount_user_areas.name) as counts:
        counts["areas"] = user_areas.recount()

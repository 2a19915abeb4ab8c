"""Consumers of the job state log: each reads the changes after its own cursor, batch by batch.

Quota accounting and email notifications fold the log this way instead of hooking every state
change, so getJob and updateJob pay nothing for them."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from pandamon.models import LogCursor

from ..selectors import status_changes_after


def lock_cursor(consumer):
    """The consumer's cursor, locked until the end of the transaction: concurrent runs take turns."""
    cursor, _ = LogCursor.objects.select_for_update().get_or_create(name=consumer)
    return cursor


def consume_batch(consumer, *, job_fields, handle, lag_seconds=None, batch=None):
    """Hand the next batch of changes (rows older than the lag; see status_changes_after) to `handle`
    and move the consumer's cursor past them, in one transaction: a failing `handle` leaves the cursor
    where it was, so the batch is handled again next time. Returns how many changes were handled."""
    lag = settings.PANDA["ACCOUNTING_LAG_SECONDS"] if lag_seconds is None else lag_seconds
    older_than = timezone.now() - timedelta(seconds=lag)
    with transaction.atomic():
        cursor = lock_cursor(consumer)
        changes = status_changes_after(cursor.last_id, older_than=older_than, job_fields=job_fields,
                                       limit=batch or settings.PANDA["ACCOUNTING_BATCH"])  # fmt: skip
        if changes:
            handle(changes)
            cursor.last_id = changes[-1]["id"]
            cursor.save(update_fields=["last_id", "updated_at"])
    return len(changes)

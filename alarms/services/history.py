"""Operations history: periodic snapshots of jobs by site and state, with retention."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone

from jobs.choices import FINAL_STATES, LIVE_STATES
from jobs.models import Job

from ..models import JobCountSnapshot


def take_snapshot(now=None):
    """Record jobs per site and state now (live states) and ended since the last snapshot (final ones),
    per site and in total (site empty); then drop snapshots older than the retention. Returns rows written."""
    now = now or timezone.now()
    previous = JobCountSnapshot.objects.aggregate(at=Max("taken_at"))["at"]
    since = previous or now - timedelta(seconds=settings.PANDA["HISTORY_INTERVAL_SECONDS"])
    live = Job.objects.filter(status__in=LIVE_STATES)
    ended = Job.objects.filter(status__in=FINAL_STATES, modification_time__gte=since, modification_time__lt=now)
    rows, totals = [], {}
    for queryset in (live, ended):
        for site_id, status, n in queryset.values_list("computing_site_id", "status").annotate(n=Count("*")).order_by():
            if site_id is not None:
                rows.append(JobCountSnapshot(taken_at=now, site_id=site_id, status=status, n=n))
            totals[status] = totals.get(status, 0) + n
    rows += [JobCountSnapshot(taken_at=now, site=None, status=status, n=n) for status, n in totals.items()]
    with transaction.atomic():
        JobCountSnapshot.objects.bulk_create(rows, batch_size=2000)
        cutoff = now - timedelta(days=settings.PANDA["HISTORY_DAYS"])
        JobCountSnapshot.objects.filter(taken_at__lt=cutoff).delete()
    return len(rows)

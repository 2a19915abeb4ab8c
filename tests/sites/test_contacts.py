import pytest

from sites.contacts import ContactBuffer
from sites.models import PilotActivity

from ..factories import SiteFactory

pytestmark = pytest.mark.django_db


def test_contacts_are_summed_in_memory_and_written_together(settings):
    settings.PANDA = {**settings.PANDA, "PILOT_CONTACT_FLUSH_SECONDS": 3600}
    site = SiteFactory(name="BNL")
    PilotActivity.objects.filter(site=site).delete()  # the row is created on the first flush if missing
    buffer = ContactBuffer()
    buffer.record(site_id=site.pk, node="wn1", getjob=True, jobs_sent=3)
    buffer.record(site_id=site.pk, node="wn2", getjob=True, jobs_sent=0)
    buffer.record(site_id=site.pk, node="wn3", update=True)
    assert not PilotActivity.objects.filter(site=site).exists()  # nothing written before the flush interval
    buffer.flush()
    activity = PilotActivity.objects.get(site=site)
    assert (activity.getjob_requests, activity.getjob_empty, activity.jobs_sent, activity.update_requests) == (
        2,
        1,
        3,
        1,
    )
    assert activity.last_node == "wn3" and activity.last_contact_at is not None
    buffer.record(site_id=site.pk, node="wn1", getjob=True, jobs_sent=1)
    buffer.flush()
    activity.refresh_from_db()
    assert (activity.getjob_requests, activity.jobs_sent) == (3, 4)


def test_a_zero_interval_writes_every_contact(settings):
    settings.PANDA = {**settings.PANDA, "PILOT_CONTACT_FLUSH_SECONDS": 0}
    site = SiteFactory(name="CERN")
    ContactBuffer().record(site_id=site.pk, node="wn1", getjob=True, jobs_sent=2)
    assert PilotActivity.objects.get(site=site).jobs_sent == 2

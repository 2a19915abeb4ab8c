"""The scheduler status pages (pandamon/scheduler_pages.py) and what batch pilots download (sites/factory/views.py)."""

from django.urls import path

from sites.factory import views as factory_views

from . import scheduler_pages

urlpatterns = [
    path("scheduler/", scheduler_pages.scheduler, name="scheduler-page"),
    path("scheduler/pilots/", scheduler_pages.pilot_list, name="scheduler-pilots"),
    path("scheduler/pilots/<str:pilot_id>/", scheduler_pages.pilot_detail, name="scheduler-pilot"),
    path("pilot/wrapper.sh", factory_views.wrapper, name="pilot-wrapper"),
    path("pilot/pilot.tar.gz", factory_views.tarball, name="pilot-tarball"),
]

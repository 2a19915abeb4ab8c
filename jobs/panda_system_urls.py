"""PanDA REST API v1 system functions (jobs/panda_api.py)."""

from django.urls import path

from . import panda_api

urlpatterns = [
    path("is_alive", panda_api.IsAlive.as_view(), name="panda-system-is-alive"),
]

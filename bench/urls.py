"""The project's URLs plus the bare dispatch endpoint the full getJob is compared with."""

from django.urls import include, path

from . import bare

urlpatterns = [
    path("bench/bare-getjob", bare.bare_getjob, name="bench-bare-getjob"),
    path("bench/bare-getjob-prepared", bare.bare_getjob_prepared, name="bench-bare-getjob-prepared"),
    path("", include("pandamon.urls")),
]

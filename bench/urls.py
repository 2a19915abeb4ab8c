"""The project's URLs plus the bare dispatch endpoint the full getJob is compared with."""

from django.urls import include, path

from . import bare

urlpatterns = [
    path("bench/bare-getjob", bare.bare_getjob, name="bench-bare-getjob"),
    path("", include("pandamon.urls")),
]

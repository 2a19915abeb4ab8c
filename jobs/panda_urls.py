"""PanDA REST API v1 job and system functions for the unchanged panda-client (jobs/panda_api.py)."""

from django.urls import path

from . import panda_api

# No trailing slash: panda-client calls {server}/api/v1/job/<function> exactly.
urlpatterns = [
    path("submit", panda_api.SubmitJobs.as_view(), name="panda-job-submit"),
    path("get_description", panda_api.JobDescriptions.as_view(), name="panda-job-get-description"),
    path(
        "get_description_incl_archive",
        panda_api.JobDescriptions.as_view(),
        name="panda-job-get-description-incl-archive",
    ),
    path("kill", panda_api.KillJobs.as_view(), name="panda-job-kill"),
    path("set_debug_mode", panda_api.SetDebugMode.as_view(), name="panda-job-set-debug-mode"),
]

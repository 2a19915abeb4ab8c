from django.urls import path

from . import error_pages, views

urlpatterns = [
    path("jobs/", views.job_list, name="jobs-page"),
    path("jobs/<int:pandaid>/", views.job_detail, name="job-page"),
    path("jobs/<int:pandaid>/kill/", views.job_kill, name="job-kill"),
    path("jobs/<int:pandaid>/retry/", views.job_retry, name="job-retry"),
    path("jobs/<int:pandaid>/peek/", views.job_peek, name="job-peek"),
    path("jobs/<int:pandaid>/debug/", views.job_debug, name="job-debug"),
    path("errors/", error_pages.errors_summary, name="errors-page"),
]

from django.urls import path

from . import views

urlpatterns = [
    path("jobs/", views.job_list, name="jobs-page"),
    path("jobs/<int:pandaid>/", views.job_detail, name="job-page"),
]

from django.urls import path

from . import plot_pages

urlpatterns = [
    path("plots/", plot_pages.job_plots, name="plots-page"),
]

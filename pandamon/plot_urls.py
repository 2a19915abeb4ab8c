from django.urls import path

from . import custom_plots, plot_pages

urlpatterns = [
    path("plots/", plot_pages.job_plots, name="plots-page"),
    path("plots/custom/", custom_plots.custom_plot, name="custom-plot-page"),
]

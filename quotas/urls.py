from django.urls import path

from . import views

urlpatterns = [path("quotas/", views.quota_page, name="quotas-page")]

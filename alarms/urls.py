from django.urls import path

from . import views

urlpatterns = [
    path("notifications/", views.notification_preferences, name="notifications-page"),
    path("alarms/", views.alarm_panel, name="alarms-page"),
    path("alarms/<int:alarm_id>/<str:action>/", views.alarm_action, name="alarm-action"),
]

from django.urls import path

from . import pages, views

urlpatterns = [
    path("tasks/", pages.task_list, name="tasks-page"),
    path("tasks/request/", views.task_request, name="task-request"),
    path("tasks/<int:task_id>/", pages.task_detail, name="task-page"),
    path("tasks/<int:task_id>/kill/", pages.task_kill, name="task-kill"),
    path("tasks/<int:task_id>/retry/", pages.task_retry, name="task-retry"),
    path("tasks/<int:task_id>/reassign/", pages.task_reassign, name="task-reassign"),
    path("tasks/<int:task_id>/pause/", pages.task_pause, name="task-pause"),
    path("tasks/<int:task_id>/resume/", pages.task_resume, name="task-resume"),
]

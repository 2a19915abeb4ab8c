"""PanDA REST API v1 task functions for the unchanged panda-client (tasks/panda_api.py)."""

from django.urls import path

from . import panda_api

urlpatterns = [
    path("submit", panda_api.SubmitTask.as_view(), name="panda-task-submit"),
    path("get_status", panda_api.GetTaskStatus.as_view(), name="panda-task-get-status"),
    path("get_job_ids", panda_api.GetJobIDs.as_view(), name="panda-task-get-job-ids"),
    path("get_task_parameters", panda_api.GetTaskParameters.as_view(), name="panda-task-get-task-parameters"),
    path("kill", panda_api.KillTask.as_view(), name="panda-task-kill"),
    path("retry", panda_api.RetryTask.as_view(), name="panda-task-retry"),
    path("pause", panda_api.PauseTask.as_view(), name="panda-task-pause"),
    path("resume", panda_api.ResumeTask.as_view(), name="panda-task-resume"),
    path("finish", panda_api.FinishTask.as_view(), name="panda-task-finish"),
    path("reactivate", panda_api.ReactivateTask.as_view(), name="panda-task-reactivate"),
]

"""PanDA API v1 task functions for the unchanged panda-client 2.2 (docs/panda-compat.md).

Thin translations onto our services: task/submit goes through tasks.services.creation exactly as
POST /api/v1/tasks/ does, once tasks/panda_taskparams.py has turned the JEDI task parameter map
into our task spec; kill, retry, pause and resume go through tasks.services.actions with its
permission checks. Only the shapes are PanDA's: a command answers `data: 0` and our message; a
refusal keeps our 4xx status and carries JEDI's return code in `data` (2 no such task, 3 not
allowed, 4 not in a state for it, ...). finish and reactivate have no equivalent here and are
refused as such; task/get_details is not offered.
"""

import json

from django.db import IntegrityError
from rest_framework import exceptions

from jobs.models import Job
from pandamon.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from pandamon.panda_api import PandaEndpoint, envelope, failure, int_param, require_user

from . import panda_taskparams
from .api import TaskSpecSerializer
from .choices import TaskStatus, TaskType
from .models import Task, TaskInput
from .services import actions, creation

# Task IDs are bigints: a larger one cannot exist, and PostgreSQL would refuse to compare it.
MAX_TASK_ID = 2**63 - 1
# JEDI's return codes for task commands (panda-client's Client.killTask docstring).
CANNOT, NOT_FOUND, NOT_ALLOWED, WRONG_STATUS, NO_CREDENTIALS, BAD_TASK_ID = 1, 2, 3, 4, 100, 101
# insertTaskParams' codes: 2 "duplication in JEDI" (an existing task is in the way), 4 any other refusal.
SUBMIT_DUPLICATE, SUBMIT_REFUSED = 2, 4


class BadTaskID(InvalidInput):
    pass


class TaskEndpoint(PandaEndpoint):
    """A task function: refusals carry JEDI's return code in `data`."""

    def error_data(self, exc):
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            return NO_CREDENTIALS
        codes = ((BadTaskID, BAD_TASK_ID), (NotFound, NOT_FOUND), (PermissionDenied, NOT_ALLOWED),
                 (Conflict, WRONG_STATUS))  # fmt: skip
        return next((code for kind, code in codes if isinstance(exc, kind)), CANNOT)


def _task_id(params):
    try:
        task_id = int_param(params, "task_id")
    except InvalidInput as error:
        raise BadTaskID(error.message) from None
    if not 0 < task_id <= MAX_TASK_ID:
        raise NotFound(f"no task {task_id}")
    return task_id


def _task(params):
    task_id = _task_id(params)
    task = Task.objects.filter(pk=task_id).first()
    if task is None:
        raise NotFound(f"no task {task_id}")
    return task


def _refuse_extra(params, allowed, reasons=None):
    """Parameters this server would not honour are refused by name; empty ones ask for nothing."""
    for key, value in params.items():
        if key not in allowed and value not in (None, False, "", 0, [], {}):
            reason = (reasons or {}).get(key, "this server does not support it")
            raise InvalidInput(f"{key[:60]}: {reason}")


# -- submission ------------------------------------------------------------------------------------


class SubmitTask(TaskEndpoint):
    """`task/submit` {"task_parameters": {...}, "parent_tid": null} -> data: the task ID, message:
    "succeeded. new jediTaskID=N ..." (prun and scripts read the ID from the message)."""

    def error_data(self, exc):
        return SUBMIT_DUPLICATE if isinstance(exc, Conflict) else SUBMIT_REFUSED

    def call(self, request, params):
        user = require_user(request)
        _refuse_extra(params, {"task_parameters"}, {"parent_tid": "parent tasks are not supported here"})
        translation = panda_taskparams.to_spec(_task_parameters(params), user=user)
        spec = _validated(translation)
        existed = (
            translation.task_type == TaskType.ANALYSIS
            and Task.objects.filter(type=TaskType.ANALYSIS, output_dataset=spec["output_dataset"]).exists()
        )
        try:
            task, pandaids = creation.submit_task(user=user, spec=spec, task_type=translation.task_type)
        except IntegrityError:
            # Two first submissions of one task at the same moment: the loser's transaction rolled back.
            raise Conflict("the same task was being submitted at the same time; submit again") from None
        return envelope(task.task_id, message=_submitted(task, pandaids, existed, translation.notes))


def _task_parameters(params):
    raw = params.get("task_parameters")
    if isinstance(raw, str):  # older clients send the map JSON-encoded
        try:
            raw = json.loads(raw)
        except ValueError:
            raise InvalidInput("task_parameters: not valid JSON") from None
    if raw is None:
        raise InvalidInput("task_parameters is required: the JEDI task parameter map")
    return raw


def _validated(translation):
    """The spec checked by our API's serializer; a problem is reported under the JEDI key it came from."""
    incoming = TaskSpecSerializer(data=translation.spec)
    if not incoming.is_valid():
        name, problems = next(iter(incoming.errors.items()))
        raise InvalidInput(f"{translation.sources.get(name, name)}: {_first_problem(problems)}")
    return dict(incoming.validated_data)


def _first_problem(problems):
    while isinstance(problems, dict | list) and problems:
        problems = next(iter(problems.values())) if isinstance(problems, dict) else problems[0]
    return str(problems)


def _submitted(task, pandaids, existed, notes):
    files = TaskInput.objects.filter(task=task, job_id__in=pandaids).values("lfn").distinct().count()
    if existed:
        text = (f"jediTaskID={task.task_id} exists for {task.output_dataset}: {files} new input file(s) in "
                f"{len(pandaids)} new job(s); the task keeps its definition")  # fmt: skip
    elif task.status == TaskStatus.BROKEN:
        text = f"jediTaskID={task.task_id} is broken: {task.status_reason}"
    else:
        text = f"succeeded. new jediTaskID={task.task_id} ({len(pandaids)} job(s) for {files} input file(s))"
    return text + (f"; notes: {'; '.join(notes)}" if notes else "")


# -- reads -----------------------------------------------------------------------------------------


class GetTaskStatus(TaskEndpoint):
    """`task/get_status` ?task_id=N -> data: the task's status (our states are JEDI state names)."""

    method = "get"

    def call(self, request, params):
        return envelope(_task(params).status)


class GetJobIDs(TaskEndpoint):
    """`task/get_job_ids` ?task_id=N -> data: the PandaIDs of all the task's jobs, every attempt."""

    method = "get"

    def call(self, request, params):
        task = _task(params)
        pandaids = Job.objects.filter(task_id=task.task_id).order_by("pandaid").values_list("pandaid", flat=True)
        return envelope(list(pandaids))


class GetTaskParameters(TaskEndpoint):
    """`task/get_task_parameters` ?task_id=N -> data: the task as a JEDI task parameter map."""

    method = "get"

    def call(self, request, params):
        return envelope(panda_taskparams.to_task_params(_task(params)))


# -- commands --------------------------------------------------------------------------------------


class TaskCommand(TaskEndpoint):
    """A command on one task: {"task_id": N} -> data 0 and what was done, through tasks.services.actions."""

    harmless = frozenset()  # options that change nothing here
    reasons = {}

    def call(self, request, params):
        user = require_user(request)
        _refuse_extra(params, {"task_id", *self.harmless}, self.reasons)
        result = self.run(user, _task_id(params))
        return envelope(0, message=result["message"])

    def run(self, user, task_id):  # pragma: no cover - every command defines it
        raise NotImplementedError


class KillTask(TaskCommand):
    harmless = frozenset({"broadcast"})  # running jobs are always told to stop

    def run(self, user, task_id):
        return actions.kill_task(user=user, task_id=task_id)


class RetryTask(TaskCommand):
    # JEDI options about child tasks, events, staging, shares and exhausted tasks: none exist here.
    harmless = frozenset({"no_child_retry", "discard_events", "disable_staging_mode", "keep_gshare_priority",
                          "ignore_hard_exhausted"})  # fmt: skip
    reasons = {"new_parameters": "a retry with new parameters is not supported here; submit a new task"}

    def run(self, user, task_id):
        return actions.retry_task(user=user, task_id=task_id, failed_only=True)


class PauseTask(TaskCommand):
    def run(self, user, task_id):
        return actions.pause_task(user=user, task_id=task_id)


class ResumeTask(TaskCommand):
    def run(self, user, task_id):
        return actions.resume_task(user=user, task_id=task_id)


class Unsupported(TaskEndpoint):
    """A command with no equivalent here: refused with the reason, after the usual checks."""

    reason = ""

    def call(self, request, params):
        require_user(request)
        _task_id(params)
        return failure(self.reason, status=400, data=CANNOT)


class FinishTask(Unsupported):
    reason = ("task/finish is not supported here: a task cannot stop taking input while its running jobs "
              "end; let it run, or abort it with task/kill")  # fmt: skip


class ReactivateTask(Unsupported):
    reason = ("task/reactivate is not supported here: retry its failed jobs with task/retry, or submit it "
              "again with the same output dataset to process files added to its input")  # fmt: skip

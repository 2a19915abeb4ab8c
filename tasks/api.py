"""REST API for tasks and the script cache.

/api/v1/tasks/                 GET list (TaskFilterSet), POST an analysis task (a resubmission adds new files only)
/api/v1/tasks/<id>/            GET one task: fields, counters, jobs by state, status history, jobsets
/api/v1/tasks/<id>/inputs/     GET its input pieces (TaskInput), paged, filtered by status/lfn/pandaid
/api/v1/tasks/production/      POST a production task (production managers)
/api/v1/cache/                 POST a file (a script or a tarball) into the script cache; GET its limits
/cache/<sha256>                GET a cached file: its uploaders, admins and pilot credentials only

Everything a submission needs checked is checked before anything is written; a refusal
changes nothing (tasks.services.creation.submit_task runs in one transaction).
"""

from django.db import IntegrityError
from django.http import FileResponse, JsonResponse
from django.views.decorators.http import require_safe
from django_filters.utils import translate_validation
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import IsAuthenticated, IsAuthenticatedOrReadOnly
from rest_framework.response import Response
from rest_framework.views import APIView

from pandamon import roles
from pandamon.api import KeysetPagination
from pandamon.errors import Conflict, InvalidInput, NotFound, PermissionDenied, ServiceError
from sites.models import PilotCredential
from sites.services import hash_token

from .choices import TaskType
from .filters import TaskFilterSet, TaskInputFilterSet
from .models import JobSet, Task, TaskInput, TaskStatusLog
from .services import actions, cache, creation

FORMATS = r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$"
# Room for a multipart upload's boundaries and part headers around the file itself.
MULTIPART_SLACK = 64 * 1024


# ---------------------------------------------------------------- serializers


def _text(max_length, **kwargs):
    return serializers.CharField(max_length=max_length, required=False, allow_blank=True, allow_null=True, **kwargs)


def _number(min_value, max_value, **kwargs):
    return serializers.IntegerField(min_value=min_value, max_value=max_value, required=False, allow_null=True,
                                    **kwargs)  # fmt: skip


class TaskSpecSerializer(serializers.Serializer):
    """A task to define. transformation, input_dataset and output_dataset are required; an analysis
    task's output is `user.<you>.*` and its name defaults to the output; one splitting rule at most."""

    name = _text(255, help_text="Unique; an analysis task's defaults to its output dataset.")
    working_group = _text(32)
    vo = _text(16)
    project = _text(64)
    transformation = _text(100_000, trim_whitespace=False,  # a script is kept byte for byte
                           help_text="URL of the payload (e.g. a /cache/<sha256> URL), a script (#!...) or a "
                                     "command on the worker.")  # fmt: skip
    trf_version = _text(64)
    sw_release = _text(64)
    job_parameters = _text(100_000, help_text="Template: ${IN} ${OUT} ${SN} ${FIRSTEVENT} ${SKIPEVENTS} ${MAXEVENTS}.")
    input_dataset = _text(255, help_text="Dataset or container name.")
    output_dataset = _text(255, help_text="Container collecting the jobs' outputs.")
    output_formats = serializers.RegexField(FORMATS, max_length=200, required=False, allow_blank=True,
                                            allow_null=True, help_text="Dot-separated, e.g. ESD.AOD.")  # fmt: skip
    follow_input = serializers.BooleanField(required=False, allow_null=True)
    no_looping_check = serializers.BooleanField(
        required=False, allow_null=True,
        help_text="true: the pilot never kills the task's jobs as looping (their work directory may stay "
                  "untouched for hours); JEDI's noLoopingCheck.",
    )  # fmt: skip
    n_files_per_job = _number(1, 100_000)
    n_events_per_job = _number(1, 10**9)
    max_size_per_job_mb = _number(1, 10**8)
    events_per_file = _number(1, 10**9)
    cpu_per_event = _number(0, 10**7)
    ram_mb = _number(0, 10_000_000)
    walltime_s = _number(0, 30 * 86400)
    priority = _number(0, 10_000)
    max_attempts = _number(1, 100)
    site = _text(64)
    excluded_sites = serializers.ListField(child=serializers.CharField(max_length=64), max_length=1000,
                                           required=False, allow_null=True)  # fmt: skip

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise InvalidInput("give the task as a JSON object")
        unknown = sorted(set(data) - set(creation.SPEC_FIELDS))
        if unknown:
            raise InvalidInput(f"unknown task field {unknown[0]}; known: {', '.join(creation.SPEC_FIELDS)}")
        return super().to_internal_value(data)


class TaskStatusLogSerializer(serializers.ModelSerializer):
    class Meta:
        model = TaskStatusLog
        fields = ["old_status", "new_status", "changed_at", "actor", "reason"]


class JobSetSerializer(serializers.ModelSerializer):
    class Meta:
        model = JobSet
        fields = ["jobset_id", "n_jobs", "created_at"]


class TaskSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner_name", read_only=True)
    url = serializers.SerializerMethodField(help_text="The task's portal page.")

    class Meta:
        model = Task
        fields = [
            "task_id", "name", "type", "status", "status_reason", "owner", "working_group", "project",
            "input_dataset", "output_dataset", "site", "priority", "files_total", "files_done", "files_failed",
            "events_total", "events_done", "jobs_by_state", "created_at", "modified_at", "status_changed_at",
            "ended_at", "url",
        ]  # fmt: skip

    def get_url(self, task) -> str:
        return page_url(self.context.get("request"), task)


class TaskDetailSerializer(TaskSerializer):
    status_log = TaskStatusLogSerializer(many=True, read_only=True)
    jobsets = JobSetSerializer(many=True, read_only=True)

    class Meta(TaskSerializer.Meta):
        fields = None
        exclude = ["owner_name"]


class TaskInputSerializer(serializers.ModelSerializer):
    pandaid = serializers.IntegerField(source="job_id", read_only=True, allow_null=True)

    class Meta:
        model = TaskInput
        fields = ["id", "lfn", "fsize", "first_event", "n_events", "status", "pandaid", "attempts", "created_at"]


class SubmissionSerializer(serializers.Serializer):
    """What a submission answers (201 for a new task, 200 for a resubmission)."""

    task = TaskSerializer()
    pandaids = serializers.ListField(child=serializers.IntegerField(), help_text="The jobs made now.")
    new_files = serializers.IntegerField(help_text="Input files this submission added to the task.")
    resubmitted = serializers.BooleanField(help_text="True: the task existed; only new input files were added.")
    ignored_fields = serializers.ListField(child=serializers.CharField(), required=False,
                                           help_text="Fields of a resubmission that differ from the task's "
                                                     "definition, which is kept.")  # fmt: skip
    message = serializers.CharField()


def page_url(request, task):
    path = f"/tasks/{task.task_id}/"
    return request.build_absolute_uri(path) if request is not None else path


# ---------------------------------------------------------------- tasks


class TaskPagination(KeysetPagination):
    ordering = "-task_id"


class TaskInputPagination(KeysetPagination):
    ordering = "id"


class TaskViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Tasks, newest first. POST a task spec to submit an analysis task (see TaskSpecSerializer)."""

    lookup_field = "task_id"
    lookup_value_regex = r"\d+"
    filterset_class = TaskFilterSet
    pagination_class = TaskPagination
    permission_classes = [IsAuthenticatedOrReadOnly]

    def get_queryset(self):
        if self.action == "retrieve":
            return Task.objects.prefetch_related("status_log", "jobsets")
        return Task.objects.all()

    def get_serializer_class(self):
        return TaskDetailSerializer if self.action == "retrieve" else TaskSerializer

    def retrieve(self, request, task_id=None):
        task = self.get_queryset().filter(task_id=task_id).first()
        if task is None:
            raise NotFound(f"no task {task_id}")
        return Response(TaskDetailSerializer(task, context={"request": request}).data)

    @extend_schema(request=TaskSpecSerializer, responses={201: SubmissionSerializer, 200: SubmissionSerializer})
    def create(self, request):
        """Submit an analysis task; the same output dataset again adds only the input files not yet processed."""
        return self._submit(request, TaskType.ANALYSIS)

    @extend_schema(request=TaskSpecSerializer, responses={201: SubmissionSerializer})
    @action(detail=False, methods=["post"], permission_classes=[IsAuthenticated])
    def production(self, request):
        """Define a production task (the Generic Task Request); needs the production_manager role."""
        if not roles.has_role(request.user, roles.PRODUCTION_MANAGER):
            raise PermissionDenied(f"defining production tasks needs the {roles.PRODUCTION_MANAGER} role")
        return self._submit(request, TaskType.PRODUCTION)

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, description="pending, assigned, done, failed (| ! * work)."),
            OpenApiParameter("lfn", str, description="File name; * wildcards."),
            OpenApiParameter("pandaid", str, description="PandaID of the job holding the piece."),
        ],
        responses={200: TaskInputSerializer(many=True)},
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=TaskInputPagination)
    def inputs(self, request, task_id=None):
        """The task's input pieces (files, or event ranges of files) and the job holding each."""
        if not Task.objects.filter(task_id=task_id).exists():
            raise NotFound(f"no task {task_id}")
        filterset = TaskInputFilterSet(request.query_params, queryset=TaskInput.objects.filter(task_id=task_id),
                                       request=request)  # fmt: skip
        if not filterset.is_valid():
            raise translate_validation(filterset.errors)
        page = self.paginate_queryset(filterset.qs)
        return self.get_paginated_response(TaskInputSerializer(page, many=True).data)

    @extend_schema(request=None, responses={200: dict})
    @action(detail=True, methods=["post"], permission_classes=[IsAuthenticated], url_path="kill")
    def kill(self, request, task_id=None):
        """Abort the task (body: {"reason"?}): queued jobs cancelled, running ones told to stop."""
        reason = str(request.data.get("reason", ""))[:200]
        return Response(actions.kill_task(user=request.user, task_id=int(task_id), reason=reason))

    @extend_schema(request=None, responses={200: dict})
    @action(detail=True, methods=["post"], permission_classes=[IsAuthenticated], url_path="retry")
    def retry(self, request, task_id=None):
        """New attempts for the failed jobs (body {"failed_only": false}: cancelled and closed ones too)."""
        failed_only = request.data.get("failed_only", True)
        if not isinstance(failed_only, bool):
            raise InvalidInput("failed_only: give true or false")
        return Response(actions.retry_task(user=request.user, task_id=int(task_id), failed_only=failed_only))

    @extend_schema(request=None, responses={200: dict})
    @action(detail=True, methods=["post"], permission_classes=[IsAuthenticated], url_path="reassign")
    def reassign(self, request, task_id=None):
        """Broker the queued jobs again (body {"exclude_site"?}: only those at that site, which the task avoids)."""
        site = request.data.get("exclude_site") or None
        if site is not None and not isinstance(site, str):
            raise InvalidInput("exclude_site: give a site name")
        return Response(actions.reassign_task(user=request.user, task_id=int(task_id), exclude_site=site))

    @extend_schema(request=None, responses={200: dict})
    @action(detail=True, methods=["post"], permission_classes=[IsAuthenticated], url_path="pause")
    def pause(self, request, task_id=None):
        """Hold the task's jobs not yet brokered."""
        return Response(actions.pause_task(user=request.user, task_id=int(task_id)))

    @extend_schema(request=None, responses={200: dict})
    @action(detail=True, methods=["post"], permission_classes=[IsAuthenticated], url_path="resume")
    def resume(self, request, task_id=None):
        """Let a paused task's jobs be brokered again."""
        return Response(actions.resume_task(user=request.user, task_id=int(task_id)))

    def _submit(self, request, task_type):
        incoming = TaskSpecSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        spec = dict(incoming.validated_data)
        existing = _existing_analysis_task(spec) if task_type == TaskType.ANALYSIS else None
        files_before = _input_files(existing) if existing else 0
        try:
            task, pandaids = creation.submit_task(user=request.user, spec=spec, task_type=task_type)
        except IntegrityError:
            # Two first submissions of one task at the same moment: the loser's transaction rolled back.
            raise Conflict("the same task was being submitted at the same time; submit again") from None
        resubmitted = existing is not None and existing.pk == task.pk
        new_files = _input_files(task) - files_before
        body = {"task": TaskSerializer(task, context={"request": request}).data, "pandaids": pandaids,
                "new_files": new_files, "resubmitted": resubmitted}  # fmt: skip
        if resubmitted:
            body["ignored_fields"] = _changed_fields(existing, spec)
            body["message"] = _resubmission_message(task, pandaids, new_files, body["ignored_fields"])
            return Response(body, status=status.HTTP_200_OK)
        body["message"] = _creation_message(task, pandaids, new_files)
        return Response(body, status=status.HTTP_201_CREATED)


def _existing_analysis_task(spec):
    output = spec.get("output_dataset")
    if not output:
        return None
    return Task.objects.filter(type=TaskType.ANALYSIS, output_dataset=output).first()


def _input_files(task):
    return TaskInput.objects.filter(task=task).values("lfn").distinct().count()


def _changed_fields(task, spec):
    """Spec fields that differ from the existing task's definition (a resubmission keeps the definition)."""
    changed = []
    for name, value in spec.items():
        if value in (None, "") or name == "name":
            continue
        if getattr(task, name) != value:
            changed.append(name)
    return changed


def _creation_message(task, pandaids, new_files):
    if task.status == "broken":
        return f"task {task.task_id} is broken: {task.status_reason}"
    return f"task {task.task_id} defined: {len(pandaids)} job(s) for {new_files} input file(s)"


def _resubmission_message(task, pandaids, new_files, ignored):
    if not pandaids:
        text = f"task {task.task_id} ({task.output_dataset}) has no new input files: nothing to do"
    else:
        text = (f"task {task.task_id} ({task.output_dataset}) exists: {new_files} new input file(s) in "
                f"{len(pandaids)} new job(s); files it had before are not processed again")  # fmt: skip
    if ignored:
        text += (f"; the task keeps its definition, so these changed fields were ignored: {', '.join(ignored)} "
                 f"(choose a new output dataset to change them)")  # fmt: skip
    return text


# ---------------------------------------------------------------- the script cache


class NotAuthenticated(ServiceError):
    status_code = 401


class CacheUploadView(APIView):
    """The script cache. POST a file as the request body (application/octet-stream) or as the multipart
    field `file`: it is stored under its SHA-256 (the same bytes again store nothing new) and its URL is
    answered, for a task's transformation. GET says the size limit."""

    permission_classes = [IsAuthenticated]
    parser_classes = [MultiPartParser]  # a raw body is read from the request stream, not parsed

    @extend_schema(responses={200: inline_serializer("CacheLimits", {"max_bytes": serializers.IntegerField(),
                                                                      "url": serializers.CharField()})})  # fmt: skip
    def get(self, request):
        return Response({"max_bytes": cache.max_bytes(), "url": cache.url_for("<sha256>", _base(request))})

    @extend_schema(
        request={"application/octet-stream": OpenApiTypes.BINARY},
        responses={201: inline_serializer("CacheEntry", {
            "sha256": serializers.CharField(), "size": serializers.IntegerField(), "kind": serializers.CharField(),
            "url": serializers.CharField(), "created": serializers.BooleanField()})},
    )  # fmt: skip
    def post(self, request):
        multipart = request.content_type.startswith("multipart/form-data")
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > cache.max_bytes() + (MULTIPART_SLACK if multipart else 0):
            raise cache.TooLarge(cache.too_large_message(length))
        if multipart:
            upload = request.FILES.get("file")
            if upload is None:
                raise InvalidInput("a multipart upload carries the file in the field 'file'")
            chunks = upload.chunks()
        else:
            chunks = _stream_chunks(request.stream)
        entry = cache.store(user=request.user, chunks=chunks)
        body = {"sha256": entry.sha256, "size": entry.size, "kind": entry.kind,
                "url": cache.url_for(entry.sha256, _base(request)), "created": entry.created}  # fmt: skip
        return Response(body, status=status.HTTP_201_CREATED if entry.created else status.HTTP_200_OK)


def _base(request):
    return request.build_absolute_uri("/")


def _stream_chunks(stream):
    if stream is None:
        return
    while chunk := stream.read(cache.CHUNK):
        yield chunk


@require_safe
def cache_file(request, sha256):
    """GET /cache/<sha256>: a cached file, to its uploaders and admins (token or session) and to pilots."""
    try:
        user, pilot = _cache_reader(request)
        path = cache.check_may_read(sha256=sha256, user=user, pilot=pilot)
    except ServiceError as error:
        response = JsonResponse(error.as_dict(), status=error.status_code)
        if error.status_code == 401:
            response["WWW-Authenticate"] = 'Bearer realm="panda cache"'
        return response
    response = FileResponse(open(path, "rb"), as_attachment=True, filename=sha256,  # noqa: SIM115 - closed by Django
                            content_type="application/octet-stream")  # fmt: skip
    response["ETag"] = f'"{sha256}"'
    response["Cache-Control"] = "private, max-age=86400, immutable"
    return response


def _cache_reader(request):
    """(user, is_pilot) of the request: a user's API token, a pilot credential, or a session."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() in ("bearer", "token") and token:
        known = Token.objects.select_related("user").filter(key=token).first()
        if known is not None and known.user.is_active:
            return known.user, False
        if PilotCredential.objects.filter(token_sha256=hash_token(token), active=True).exists():
            return None, True
        raise NotAuthenticated("token refused: it is neither a user's API token nor an active pilot credential")
    if request.user.is_authenticated:
        return request.user, False
    raise NotAuthenticated("the script cache serves user code to its uploaders and to pilots only: "
                           "give a token (Authorization: Bearer <token>) or log in")  # fmt: skip

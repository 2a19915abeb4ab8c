"""REST API for jobs: /api/v1/jobs/ (submit in bulk, list, read, kill, retry, peek, debug mode)."""

import re

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated, IsAuthenticatedOrReadOnly
from rest_framework.response import Response

from pandamon.api import KeysetPagination

from . import control_selectors, selectors
from .filters import JobFilterSet
from .models import Job, JobFile, JobStatusLog, PeekRequest
from .services import kill, peek, retry, submission

LFN_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-+:]*$")


def validate_lfn(value):
    if not LFN_PATTERN.match(value):
        raise serializers.ValidationError("a file name may hold letters, digits and . _ - + : and no slash")
    return value


class FileSpecSerializer(serializers.Serializer):
    lfn = serializers.CharField(max_length=256, validators=[validate_lfn])
    guid = serializers.CharField(max_length=64, required=False, allow_blank=True)
    scope = serializers.CharField(max_length=64, required=False, allow_blank=True)
    dataset = serializers.CharField(max_length=255, required=False, allow_blank=True)
    fsize = serializers.IntegerField(min_value=0, required=False)
    checksum = serializers.RegexField(r"^ad:[0-9a-f]{8}$", required=False, help_text="ad:<8 hex digits of adler32>")


class JobSpecSerializer(serializers.Serializer):
    """One job to submit. Only `job_name` and `transformation` are required."""

    job_name = serializers.CharField(max_length=200)
    transformation = serializers.CharField(
        max_length=100000, trim_whitespace=False, help_text="URL of a script, a script (#!...) or a command."
    )
    job_parameters = serializers.CharField(max_length=100000, required=False, allow_blank=True)
    prod_source_label = serializers.RegexField(r"^[a-z_]{1,20}$", required=False, default="user")
    processing_type = serializers.CharField(max_length=64, required=False, allow_blank=True)
    computing_site = serializers.CharField(max_length=64, required=False, allow_blank=True)
    cloud = serializers.CharField(max_length=32, required=False, allow_blank=True)
    priority = serializers.IntegerField(min_value=-10000, max_value=10000, required=False)
    core_count = serializers.IntegerField(min_value=1, max_value=256, required=False)
    min_ram_count = serializers.IntegerField(min_value=0, max_value=10_000_000, required=False, help_text="MB")
    max_disk_count = serializers.IntegerField(min_value=0, max_value=100_000_000, required=False, help_text="MB")
    max_walltime = serializers.IntegerField(min_value=0, max_value=30 * 86400, required=False, help_text="s")
    max_cpu_count = serializers.IntegerField(min_value=0, max_value=30 * 86400, required=False, help_text="s")
    max_attempt = serializers.IntegerField(min_value=1, max_value=100, required=False)
    task_id = serializers.IntegerField(min_value=1, required=False)
    jobset_id = serializers.IntegerField(min_value=1, required=False)
    job_definition_id = serializers.IntegerField(min_value=1, required=False)
    working_group = serializers.CharField(max_length=32, required=False, allow_blank=True)
    vo = serializers.CharField(max_length=16, required=False, allow_blank=True)
    sw_release = serializers.CharField(max_length=64, required=False, allow_blank=True)
    homepackage = serializers.CharField(max_length=80, required=False, allow_blank=True)
    cmt_config = serializers.CharField(max_length=64, required=False, allow_blank=True)
    container_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    special_handling = serializers.CharField(max_length=80, required=False, allow_blank=True)
    app = serializers.CharField(max_length=64, required=False, allow_blank=True)
    input_files = FileSpecSerializer(many=True, required=False)
    output_files = FileSpecSerializer(many=True, required=False)
    log_file = serializers.CharField(max_length=256, required=False, validators=[validate_lfn])


class SubmitSerializer(serializers.Serializer):
    jobs = JobSpecSerializer(many=True, allow_empty=False)


class SubmitResultSerializer(serializers.Serializer):
    pandaids = serializers.ListField(child=serializers.IntegerField())


class JobFileSerializer(serializers.ModelSerializer):
    class Meta:
        model = JobFile
        exclude = ["job"]


class JobStatusLogSerializer(serializers.ModelSerializer):
    class Meta:
        model = JobStatusLog
        fields = ["old_status", "new_status", "changed_at", "actor", "reason"]


class JobSerializer(serializers.ModelSerializer):
    computing_site = serializers.SlugRelatedField(slug_field="name", read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Job
        exclude = ["job_parameters", "transformation"]


class JobDetailSerializer(JobSerializer):
    files = JobFileSerializer(many=True, read_only=True)
    status_log = JobStatusLogSerializer(many=True, read_only=True)

    class Meta(JobSerializer.Meta):
        exclude = []


class KillSerializer(serializers.Serializer):
    pandaids = serializers.ListField(child=serializers.IntegerField(min_value=1), allow_empty=False, max_length=10000)
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True)


class PeekInputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=PeekRequest.Kind.choices, help_text="tail, ls or ps")


class PeekRowSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    state = serializers.CharField(help_text="pending, answered or expired")
    requested_by = serializers.CharField(allow_null=True)
    requested_at = serializers.DateTimeField()
    answered_at = serializers.DateTimeField(allow_null=True)
    answer = serializers.CharField(help_text="The pilot's answer (at most 64 KB), or why there is none.")


class DebugOutputSerializer(serializers.Serializer):
    stdout = serializers.CharField()
    received_at = serializers.DateTimeField()


class JobControlSerializer(serializers.Serializer):
    debug_mode = serializers.BooleanField()
    peeks = PeekRowSerializer(many=True)
    debug_output = DebugOutputSerializer(allow_null=True)


class DebugModeSerializer(serializers.Serializer):
    on = serializers.BooleanField(help_text="true: debug mode on; false: off")


class JobPagination(KeysetPagination):
    ordering = "-pandaid"


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Jobs. POST a list of jobs (or `{"jobs": [...]}`) to submit them in one transaction."""

    lookup_field = "pandaid"
    lookup_value_regex = r"\d+"
    filterset_class = JobFilterSet
    pagination_class = JobPagination
    permission_classes = [IsAuthenticatedOrReadOnly]

    def get_queryset(self):
        if self.action == "retrieve":
            return Job.objects.select_related("computing_site", "owner").prefetch_related("files", "status_log")
        return selectors.job_list().select_related("owner")

    def get_serializer_class(self):
        return JobDetailSerializer if self.action == "retrieve" else JobSerializer

    @extend_schema(request=SubmitSerializer, responses={201: SubmitResultSerializer})
    def create(self, request):
        body = {"jobs": request.data} if isinstance(request.data, list) else request.data
        incoming = SubmitSerializer(data=body)
        incoming.is_valid(raise_exception=True)
        pandaids = submission.submit_jobs(submitter=request.user, specs=incoming.validated_data["jobs"])
        return Response({"pandaids": pandaids}, status=status.HTTP_201_CREATED)

    @extend_schema(request=KillSerializer, responses={200: dict})
    @action(detail=False, methods=["post"], permission_classes=[IsAuthenticated])
    def kill(self, request):
        """Kill jobs by PandaID: queued ones are cancelled, running ones get a kill command."""
        incoming = KillSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        outcome = kill.kill_jobs(
            user=request.user,
            pandaids=incoming.validated_data["pandaids"],
            reason=incoming.validated_data.get("reason", ""),
        )
        return Response({"results": {str(pandaid): result for pandaid, result in outcome.items()}})

    @extend_schema(request=None, responses={201: JobSerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsAuthenticated])
    def retry(self, request, pandaid=None):
        """Create the next attempt of a failed, cancelled or closed job (owner or admin)."""
        new = retry.retry_for_user(user=request.user, pandaid=int(pandaid))
        return Response(JobSerializer(new).data, status=status.HTTP_201_CREATED)

    @extend_schema(methods=["GET"], request=None, responses={200: JobControlSerializer})
    @extend_schema(methods=["POST"], request=PeekInputSerializer, responses={201: PeekRowSerializer})
    @action(detail=True, methods=["get", "post"])
    def peek(self, request, pandaid=None):
        """GET: the job's peek requests and debug output. POST {kind}: ask the job's pilot for `tail` (of
        the payload's output), `ls` (of its work directory) or `ps` (its processes); owner, shifter or
        admin, running jobs only; the answer comes with the pilot's next heartbeat."""
        if request.method == "GET":
            job = selectors.job_detail(pandaid=int(pandaid))
            control = control_selectors.job_control(job=job)
            return Response(JobControlSerializer(control).data)
        incoming = PeekInputSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        created = peek.request_peek(user=request.user, pandaid=int(pandaid), kind=incoming.validated_data["kind"])
        row = control_selectors.peek_row(created, created.job)
        return Response(PeekRowSerializer(row).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=DebugModeSerializer, responses={200: dict})
    @action(detail=True, methods=["post"], permission_classes=[IsAuthenticated])
    def debug(self, request, pandaid=None):
        """Debug mode on or off (owner, shifter or admin): the pilot then heartbeats every minute and
        sends the tail of the payload's stdout with each heartbeat (GET .../peek/ shows it)."""
        incoming = DebugModeSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        job = peek.set_debug_mode(user=request.user, pandaid=int(pandaid), on=incoming.validated_data["on"])
        return Response({"pandaid": job.pandaid, "debug_mode": job.debug_mode})

"""REST API for alarms: list (the grammar), register (external probes), acknowledge, resolve."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated, IsAuthenticatedOrReadOnly
from rest_framework.response import Response

from pandamon import roles
from pandamon.api import KeysetPagination
from pandamon.errors import PermissionDenied

from .categories import categories, category_help
from .choices import Severity, SubjectKind
from .filters import AlarmFilterSet
from .models import Alarm
from .services import alarms


class AlarmSerializer(serializers.ModelSerializer):
    acknowledged_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    category_help = serializers.SerializerMethodField(help_text="What alarms of this category mean.")

    class Meta:
        model = Alarm
        exclude = ["notified_at"]

    def get_category_help(self, alarm) -> str:
        return category_help(alarm.category)


class CategorySerializer(serializers.Serializer):
    category = serializers.CharField()
    rule = serializers.CharField(help_text="The rule in alarms/rules.py that raises it.")
    subject_kind = serializers.ChoiceField(choices=SubjectKind.choices)
    help = serializers.CharField(help_text="What it means, with the thresholds in force.")


class RaiseSerializer(serializers.Serializer):
    category = serializers.RegexField(r"^[a-z0-9][a-z0-9_.:\-]{0,59}$", help_text="e.g. probe-storage-full")
    severity = serializers.ChoiceField(choices=Severity.choices)
    subject_kind = serializers.ChoiceField(choices=SubjectKind.choices)
    subject = serializers.CharField(max_length=255)
    message = serializers.CharField(max_length=500)


class AlarmPagination(KeysetPagination):
    ordering = "-last_seen"


class AlarmViewSet(viewsets.ReadOnlyModelViewSet):
    """Alarms. POST registers one (shifters, admins and data operators: for probes and scripts);
    raising a live alarm again updates it."""

    queryset = Alarm.objects.select_related("acknowledged_by")
    serializer_class = AlarmSerializer
    filterset_class = AlarmFilterSet
    pagination_class = AlarmPagination
    permission_classes = [IsAuthenticatedOrReadOnly]

    @extend_schema(request=RaiseSerializer, responses={201: AlarmSerializer})
    def create(self, request):
        if not any(roles.has_role(request.user, role) for role in (roles.SHIFTER, roles.DATA_OPERATOR)) and not (
            roles.is_admin(request.user)
        ):
            raise PermissionDenied(f"registering alarms needs the {roles.SHIFTER} or {roles.DATA_OPERATOR} role")
        incoming = RaiseSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        alarm = alarms.raise_alarm(alarms.Finding(**incoming.validated_data), source=f"api:{request.user.username}")
        return Response(AlarmSerializer(alarm).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: CategorySerializer(many=True)})
    @action(detail=False, methods=["get"], pagination_class=None, filterset_class=None)
    def categories(self, request):
        """The categories the rules raise, what each means and its thresholds (probes may add others)."""
        return Response(CategorySerializer(categories(), many=True).data)

    @extend_schema(request=None, responses={200: AlarmSerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsAuthenticated])
    def acknowledge(self, request, pk=None):
        return Response(AlarmSerializer(alarms.acknowledge(user=request.user, alarm_id=int(pk))).data)

    @extend_schema(request=None, responses={200: AlarmSerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsAuthenticated])
    def resolve(self, request, pk=None):
        return Response(AlarmSerializer(alarms.resolve(user=request.user, alarm_id=int(pk))).data)

"""REST API of the data flow: /api/v1/subscriptions/, /transfers/, /transfer-channels/, /callbacks/ and
/consistency-checks/ (docs/catalog-api.md, "The data flow").

Every write calls a service (datasets.services.subscriptions, .callbacks), which checks who may do it and
raises the ServiceError that becomes the 4xx answer. Reads are open like the catalog's (the monitor is
public), except callbacks (a user sees their own; their URLs are their business) and consistency checks
(operators' reports on sites' storage). Lists take the one filter grammar (datasets.filters) and page with
keysets, newest first.
"""

from django_filters.utils import translate_validation
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.response import Response

from pandamon import roles
from pandamon.api import KeysetPagination

from .choices import Activity, DatasetKind, SubscriptionState
from .filters import (
    ConsistencyCheckFilterSet,
    ReplicaCallbackFilterSet,
    SubscriptionFilterSet,
    TransferChannelFilterSet,
    TransferRequestFilterSet,
)
from .flow_selectors import channel_totals, rate, subscription_rows, subscription_transfer_counts
from .models import ConsistencyCheck, ReplicaCallback, Subscription, TransferChannelStat, TransferRequest
from .services import callbacks, subscriptions

ID_IN_URL = r"\d+"
PRIORITY_MESSAGE = "give an integer from 1 (lowest) to 5 (highest)"


def _valid(serializer_class, data):
    incoming = serializer_class(data=data)
    incoming.is_valid(raise_exception=True)
    return incoming.validated_data


def sees_every_callback(user):
    return roles.is_admin(user) or roles.has_role(user, roles.DATA_OPERATOR)


class IdPagination(KeysetPagination):
    ordering = "-id"


# --- Subscriptions ----------------------------------------------------------------------------


class ProgressSerializer(serializers.Serializer):
    files_wanted = serializers.IntegerField(help_text="Files in the dataset's latest version.")
    files_present = serializers.IntegerField(help_text="Of those, held at the site.")
    bytes_wanted = serializers.IntegerField()
    bytes_present = serializers.IntegerField()
    complete = serializers.BooleanField()


class SubscriptionSerializer(serializers.ModelSerializer):
    dataset = serializers.CharField(source="dataset.name")
    dataset_kind = serializers.CharField(source="dataset.kind")
    site = serializers.CharField(source="site.name")
    state_text = serializers.SerializerMethodField(help_text="What the state means.")
    progress = serializers.SerializerMethodField(
        help_text="What the site holds of the dataset (null for a container: see its members' replicas)."
    )

    class Meta:
        model = Subscription
        fields = [
            "id", "dataset", "dataset_kind", "site", "owner_name", "activity", "priority", "state", "state_text",
            "reason", "created_at", "modified_at", "evaluated_at", "stuck_at", "done_at", "progress",
        ]  # fmt: skip

    def get_state_text(self, subscription) -> str:
        return SubscriptionState(subscription.state).label

    @extend_schema_field(ProgressSerializer(allow_null=True))
    def get_progress(self, subscription):
        dataset = subscription.dataset
        if dataset.kind == DatasetKind.CONTAINER:
            return None
        present = getattr(subscription, "files_present", None) or 0
        return {
            "files_wanted": dataset.n_files, "files_present": present, "bytes_wanted": dataset.bytes,
            "bytes_present": getattr(subscription, "bytes_present", None) or 0, "complete": present >= dataset.n_files,
        }  # fmt: skip


class SubscriptionDetailSerializer(SubscriptionSerializer):
    transfers = serializers.SerializerMethodField(
        help_text="Transfers of the dataset's files to the site, per state (null for a container)."
    )

    class Meta(SubscriptionSerializer.Meta):
        fields = SubscriptionSerializer.Meta.fields + ["transfers"]

    @extend_schema_field(serializers.DictField(child=serializers.IntegerField(), allow_null=True))
    def get_transfers(self, subscription):
        return subscription_transfer_counts(subscription)


class SubscribeSerializer(serializers.Serializer):
    dataset = serializers.CharField(max_length=255, help_text="A dataset, container or datablock name.")
    site = serializers.CharField(max_length=64, help_text="A site with a storage endpoint.")
    priority = serializers.IntegerField(
        required=False, default=3, min_value=1, max_value=5, help_text="1 (lowest) to 5 (highest); default 3.",
        error_messages={key: PRIORITY_MESSAGE for key in ("invalid", "min_value", "max_value", "max_string_length")},
    )  # fmt: skip
    activity = serializers.CharField(required=False, default=Activity.USER, help_text="user (default) or production.")


class SuspendSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=400, required=False, allow_blank=True, default="")


class SubscriptionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Subscriptions: a site asks to hold a dataset, a container or a datablock (DQ2 registerDatasetSubscription).

    The subscription agent queues one transfer per file the site lacks; the transfer agent moves them."""

    lookup_value_regex = ID_IN_URL
    filterset_class = SubscriptionFilterSet
    pagination_class = IdPagination

    def get_queryset(self):
        return subscription_rows()

    def get_serializer_class(self):
        return SubscriptionDetailSerializer if self.action == "retrieve" else SubscriptionSerializer

    def _answer(self, pk, code=status.HTTP_200_OK):
        return Response(SubscriptionSerializer(subscription_rows().get(pk=pk)).data, status=code)

    @extend_schema(request=SubscribeSerializer, responses={201: SubscriptionSerializer})
    def create(self, request):
        """Subscribe a site to a dataset: the dataset's writer (or a production manager / data operator) may."""
        body = _valid(SubscribeSerializer, request.data)
        subscription = subscriptions.create_subscription(
            user=request.user, name=body["dataset"], site_name=body["site"], priority=body["priority"],
            activity=body["activity"],
        )  # fmt: skip
        return self._answer(subscription.pk, status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request, pk=None):
        """Unsubscribe: queued transfers no other subscription of the site wants are dropped; replicas stay."""
        subscriptions.delete_subscription(user=request.user, pk=int(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=SuspendSerializer, responses={200: SubscriptionSerializer})
    @action(detail=True, methods=["post"])
    def suspend(self, request, pk=None):
        """The agent leaves a suspended subscription alone (its owner, a data operator or an admin)."""
        body = _valid(SuspendSerializer, request.data)
        subscriptions.suspend_subscription(user=request.user, pk=int(pk), reason=body["reason"])
        return self._answer(pk)

    @extend_schema(request=None, responses={200: SubscriptionSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Back to work: failed transfers are queued again and the agent re-checks what is missing."""
        subscriptions.resume_subscription(user=request.user, pk=int(pk))
        return self._answer(pk)


# --- Transfers and channels -------------------------------------------------------------------


class TransferSerializer(serializers.ModelSerializer):
    lfn = serializers.CharField(source="file.lfn")
    fsize = serializers.IntegerField(source="file.fsize")
    source = serializers.SlugRelatedField(slug_field="name", read_only=True)
    destination = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = TransferRequest
        fields = [
            "id", "lfn", "fsize", "source", "destination", "activity", "priority", "state", "attempts", "error",
            "tool", "bytes", "requested_at", "next_attempt_at", "submitted_at", "finished_at", "seconds",
        ]  # fmt: skip


class TransferViewSet(viewsets.ReadOnlyModelViewSet):
    """The transfer queue: one request per file and destination site (the latest attempt's outcome)."""

    queryset = TransferRequest.objects.select_related("file", "source", "destination")
    serializer_class = TransferSerializer
    filterset_class = TransferRequestFilterSet
    pagination_class = IdPagination
    lookup_value_regex = ID_IN_URL


class ChannelStatSerializer(serializers.ModelSerializer):
    source = serializers.SlugRelatedField(slug_field="name", read_only=True)
    destination = serializers.SlugRelatedField(slug_field="name", read_only=True)
    bytes_per_second = serializers.SerializerMethodField(help_text="bytes_done / seconds (null when none).")

    class Meta:
        model = TransferChannelStat
        fields = [
            "id", "source", "destination", "hour", "files_done", "bytes_done", "files_failed", "seconds",
            "bytes_per_second", "last_error",
        ]  # fmt: skip

    def get_bytes_per_second(self, stat) -> float | None:
        return rate(stat.bytes_done, stat.seconds)


class ChannelTotalSerializer(serializers.Serializer):
    source = serializers.CharField()
    destination = serializers.CharField()
    files_done = serializers.IntegerField()
    bytes_done = serializers.IntegerField()
    files_failed = serializers.IntegerField()
    seconds = serializers.FloatField()
    bytes_per_second = serializers.FloatField(allow_null=True)
    failure_fraction = serializers.FloatField(allow_null=True, help_text="files_failed / (files_done + files_failed)")
    hours = serializers.IntegerField(help_text="Hours of the window with traffic on the channel.")
    last_hour = serializers.DateTimeField()
    last_error = serializers.CharField(help_text="The latest error in the window.")


class ChannelSummarySerializer(serializers.Serializer):
    window = serializers.DictField(help_text="from, to, hours of the window the totals cover.")
    results = ChannelTotalSerializer(many=True)


class ChannelPagination(KeysetPagination):
    ordering = ("-hour", "-id")


class TransferChannelViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Transfers per channel (source site -> destination site) and hour, over a window (hours=N, default 24)."""

    queryset = TransferChannelStat.objects.select_related("source", "destination")
    serializer_class = ChannelStatSerializer
    filterset_class = TransferChannelFilterSet
    pagination_class = ChannelPagination

    @extend_schema(responses={200: ChannelSummarySerializer})
    @action(detail=False, methods=["get"], pagination_class=None)
    def summary(self, request):
        """Per-channel totals over the window (the same filters and hours= as the hourly list)."""
        filterset = self.filterset_class(request.query_params, queryset=self.get_queryset(), request=request)
        if not filterset.is_valid():
            raise translate_validation(filterset.errors)
        window = filterset.window
        return Response(
            {
                "window": {"from": window.start, "to": window.end, "hours": window.hours},
                "results": channel_totals(filterset.qs),
            }
        )


# --- Callbacks ----------------------------------------------------------------------------------


class CallbackSerializer(serializers.ModelSerializer):
    dataset = serializers.CharField(source="dataset.name")
    site = serializers.CharField(source="site.name")

    class Meta:
        model = ReplicaCallback
        fields = [
            "id", "dataset", "site", "kind", "url", "owner_name", "state", "attempts", "last_error",
            "next_attempt_at", "created_at", "fired_at", "delivered_at",
        ]  # fmt: skip


class RegisterCallbackSerializer(serializers.Serializer):
    dataset = serializers.CharField(max_length=255)
    site = serializers.CharField(max_length=64)
    url = serializers.CharField(help_text="http:// or https:// URL, at most 500 characters; POSTed once complete.")


class CallbackViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Callbacks on complete dataset replicas. A user sees their own; data operators and admins see all."""

    serializer_class = CallbackSerializer
    filterset_class = ReplicaCallbackFilterSet
    pagination_class = IdPagination
    permission_classes = [IsAuthenticated]
    lookup_value_regex = ID_IN_URL

    def get_queryset(self):
        queryset = ReplicaCallback.objects.select_related("dataset", "site")
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return queryset.none()
        if sees_every_callback(self.request.user):
            return queryset
        return queryset.filter(owner=self.request.user)

    @extend_schema(request=RegisterCallbackSerializer, responses={201: CallbackSerializer})
    def create(self, request):
        """POST {"event": "replica_complete", ...} to the URL once the site holds every file of the dataset."""
        body = _valid(RegisterCallbackSerializer, request.data)
        callback = callbacks.register_user_callback(
            user=request.user, name=body["dataset"], site_name=body["site"], url=body["url"]
        )
        return Response(CallbackSerializer(callback).data, status=status.HTTP_201_CREATED)


# --- Consistency checks ------------------------------------------------------------------------


class IsDataOperator(BasePermission):
    message = f"consistency checks are shown to the {roles.DATA_OPERATOR} role and admins"

    def has_permission(self, request, view):
        return roles.is_admin(request.user) or roles.has_role(request.user, roles.DATA_OPERATOR)


class ConsistencyCheckSerializer(serializers.ModelSerializer):
    site = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = ConsistencyCheck
        fields = [
            "id", "site", "started_at", "finished_at", "files_on_storage", "replicas_in_catalog", "n_dark", "n_lost",
            "fixed", "error",
        ]  # fmt: skip


class ConsistencyCheckDetailSerializer(ConsistencyCheckSerializer):
    class Meta(ConsistencyCheckSerializer.Meta):
        fields = ConsistencyCheckSerializer.Meta.fields + ["dark", "lost"]


class ConsistencyCheckViewSet(viewsets.ReadOnlyModelViewSet):
    """Comparisons of sites' storage with their replica catalogs: dark files and lost replicas."""

    queryset = ConsistencyCheck.objects.select_related("site")
    filterset_class = ConsistencyCheckFilterSet
    pagination_class = IdPagination
    permission_classes = [IsAuthenticated, IsDataOperator]
    lookup_value_regex = ID_IN_URL

    def get_serializer_class(self):
        return ConsistencyCheckDetailSerializer if self.action == "retrieve" else ConsistencyCheckSerializer

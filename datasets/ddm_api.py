"""REST API of the data distribution policy (docs/ddm-policy.md): /api/v1/placement-rules/,
/placement-decisions/ and /site-preferences/. Reads are open like the rest of the monitor; writes call
the services (datasets.services.policy_admin), which check the data_operator role and the input."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from pandamon.api import KeysetPagination

from .ddm_filters import PlacementDecisionFilterSet, PlacementRuleFilterSet, SitePreferenceFilterSet
from .models import PlacementDecision, PlacementRule, SitePreference
from .services import policy_admin


class IdPagination(KeysetPagination):
    ordering = "-id"


class RuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = PlacementRule
        fields = ["id", "name", "description", "enabled", "order", "conditions", "target", "media", "clouds",
                  "sites", "shares", "activity", "priority", "created_by_name", "created_at", "modified_at",
                  "applied_at"]  # fmt: skip
        read_only_fields = fields


class ApplySerializer(serializers.Serializer):
    since_days = serializers.IntegerField(required=False, min_value=1, max_value=3650, allow_null=True)


class PlacementRuleViewSet(viewsets.ReadOnlyModelViewSet):
    """Placement rules: which new datasets are subscribed where (data operators write them)."""

    queryset = PlacementRule.objects.all()
    serializer_class = RuleSerializer
    filterset_class = PlacementRuleFilterSet
    pagination_class = IdPagination
    lookup_value_regex = r"\d+"

    @extend_schema(request=RuleSerializer, responses={201: RuleSerializer})
    def create(self, request):
        """A rule from {name, target, conditions?, media?, clouds?, sites?, shares?, activity?, priority?, ...}."""
        rule = policy_admin.create_rule(user=request.user, spec=request.data)
        return Response(RuleSerializer(rule).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RuleSerializer, responses={200: RuleSerializer})
    def partial_update(self, request, pk=None):
        rule = policy_admin.update_rule(user=request.user, pk=int(pk), spec=request.data)
        return Response(RuleSerializer(rule).data)

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request, pk=None):
        """Delete the rule and its decisions; the subscriptions it made stay."""
        policy_admin.delete_rule(user=request.user, pk=int(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=ApplySerializer, responses={202: RuleSerializer})
    @action(detail=True, methods=["post"])
    def apply(self, request, pk=None):
        """Apply the rule retroactively (queued): to existing datasets it has not decided yet."""
        body = ApplySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        rule = policy_admin.request_retroactive(user=request.user, pk=int(pk),
                                                since_days=body.validated_data.get("since_days"))  # fmt: skip
        return Response(RuleSerializer(rule).data, status=status.HTTP_202_ACCEPTED)


class TargetSerializer(serializers.Serializer):
    site = serializers.CharField(source="site.name")
    outcome = serializers.CharField()
    share_start = serializers.IntegerField()
    share_end = serializers.IntegerField()
    note = serializers.CharField()


class DecisionSerializer(serializers.ModelSerializer):
    rule = serializers.CharField(source="rule.name")
    dataset = serializers.CharField(source="dataset.name")
    targets = TargetSerializer(many=True, read_only=True)

    class Meta:
        model = PlacementDecision
        fields = ["id", "rule", "dataset", "state", "note", "n_subscribed", "against_preferences", "evaluated_at",
                  "targets"]  # fmt: skip


class PlacementDecisionViewSet(viewsets.ReadOnlyModelViewSet):
    """What each rule decided for each dataset, with every site it considered."""

    queryset = PlacementDecision.objects.select_related("rule", "dataset").prefetch_related("targets__site")
    serializer_class = DecisionSerializer
    filterset_class = PlacementDecisionFilterSet
    pagination_class = IdPagination
    lookup_value_regex = r"\d+"


class PreferenceSerializer(serializers.ModelSerializer):
    site = serializers.CharField(source="site.name")

    class Meta:
        model = SitePreference
        fields = ["id", "site", "kind", "pattern", "created_by_name", "created_at"]


class NewPreferenceSerializer(serializers.Serializer):
    site = serializers.CharField(max_length=64)
    kind = serializers.CharField(max_length=16, help_text="category, format or dataset.")
    pattern = serializers.CharField(max_length=255)


class SitePreferenceViewSet(mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    """What Tier-2s want: categories, formats and datasets (a site with none takes anything)."""

    queryset = SitePreference.objects.select_related("site")
    serializer_class = PreferenceSerializer
    filterset_class = SitePreferenceFilterSet
    pagination_class = IdPagination
    lookup_value_regex = r"\d+"

    @extend_schema(request=NewPreferenceSerializer, responses={201: PreferenceSerializer})
    def create(self, request):
        body = NewPreferenceSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        preference = policy_admin.add_preference(user=request.user, site_name=body.validated_data["site"],
                                                 kind=body.validated_data["kind"],
                                                 pattern=body.validated_data["pattern"])  # fmt: skip
        return Response(PreferenceSerializer(preference).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        policy_admin.remove_preference(user=request.user, pk=int(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)

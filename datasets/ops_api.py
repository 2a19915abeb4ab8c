"""REST API of DDM operations under /api/v1/ddm/ (docs/ddm-policy.md): activity priorities, channel and site
pauses, user-area quotas. Reads are open; writes call the services, which check the data_operator role."""

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response

from . import ops_selectors as selectors
from .services import channels, cleaning, priorities, user_areas


class PauseChannelSerializer(serializers.Serializer):
    source = serializers.CharField(max_length=64)
    destination = serializers.CharField(max_length=64)
    paused = serializers.BooleanField()
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class PauseSiteSerializer(serializers.Serializer):
    site = serializers.CharField(max_length=64)
    paused = serializers.BooleanField()
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class UserAreaSerializer(serializers.Serializer):
    site = serializers.CharField(max_length=64)
    quota_bytes = serializers.IntegerField(min_value=0, allow_null=True, help_text="null = no user area.")


def _valid(serializer_class, data):
    body = serializer_class(data=data)
    body.is_valid(raise_exception=True)
    return body.validated_data


@extend_schema(request={"application/json": {"type": "object", "additionalProperties": {"type": "integer"}}},
               responses={200: dict})  # fmt: skip
@api_view(["GET", "POST"])
def activity_priorities(request):
    """GET: the activities in claim order with their queues. POST {activity: rank, ...} (data operators)."""
    if request.method == "POST":
        priorities.set_ranks(user=request.user, changes=request.data)
    return Response({"activities": selectors.activity_queue(timezone.now())})


@extend_schema(request=PauseChannelSerializer, responses={200: dict})
@api_view(["GET", "POST"])
def channel_health(request):
    """GET: every channel's health over the alarm window. POST: pause or resume a channel (data operators)."""
    if request.method == "POST":
        body = _valid(PauseChannelSerializer, request.data)
        channels.set_channel_paused(user=request.user, **body)
    health = selectors.channel_health(timezone.now())
    return Response({"from": health["from"], "channels": health["rows"], "paused_sites": selectors.paused_sites()})


@extend_schema(request=PauseSiteSerializer, responses={200: dict})
@api_view(["POST"])
def pause_site(request):
    """Pause or resume a site: no transfer to or from it; placement rules leave it out (data operators)."""
    body = _valid(PauseSiteSerializer, request.data)
    config = channels.set_site_paused(user=request.user, site_name=body["site"], paused=body["paused"],
                                      reason=body["reason"])  # fmt: skip
    return Response({"site": body["site"], "paused": config.paused, "reason": config.paused_reason})


@extend_schema(request=UserAreaSerializer, responses={200: dict})
@api_view(["GET", "POST"])
def user_area(request):
    """GET: the sized user areas and their use. POST {site, quota_bytes}: size one (data operators)."""
    if request.method == "POST":
        body = _valid(UserAreaSerializer, request.data)
        user_areas.set_quota(user=request.user, site_name=body["site"], quota_bytes=body["quota_bytes"])
    return Response({"user_areas": selectors.user_area_rows()})


class DecideSerializer(serializers.Serializer):
    ids = serializers.ListField(child=serializers.IntegerField(), min_length=1, max_length=1000)
    approve = serializers.BooleanField(help_text="true: approve (deleted by the next pass); false: reject (kept).")


@extend_schema(request=DecideSerializer, responses={200: dict})
@api_view(["POST"])
def decide_deletions(request):
    """Approve or reject deletion proposals (data operators); all the given ones or none.
    The proposals are listed at /ddm/deletions/?json (same filters)."""
    body = _valid(DecideSerializer, request.data)
    n = cleaning.decide(user=request.user, ids=body["ids"], approve=body["approve"])
    return Response({"decided": n, "approved": body["approve"]})

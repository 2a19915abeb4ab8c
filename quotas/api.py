"""REST API for quotas: GET /api/v1/quotas/me (usage against limits, with 30 days of history)."""

from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from .selectors import quota_report


@extend_schema(responses={200: dict})
@api_view(["GET"])
@permission_classes([IsAuthenticated])
def my_quotas(request):
    """Your quotas and those of your physics groups: used, soft and hard limit, where the limit comes
    from, when CPU quotas reset, and per-day usage of the last 30 days."""
    return Response({"user": request.user.username, "accounts": quota_report(request.user)})

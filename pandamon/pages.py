"""Helpers every portal page uses: the JSON twin and error pages from service errors."""

from django.core.serializers.json import DjangoJSONEncoder
from django.http import JsonResponse
from django.shortcuts import render

from .errors import ServiceError


def wants_json(request):
    return "json" in request.GET or "application/json" in request.headers.get("Accept", "")


def render_page(request, template, context, *, json_data):
    """Render `template`, or the same data as JSON when asked (`?json` or Accept: application/json)."""
    if wants_json(request):
        return JsonResponse(json_data, encoder=DjangoJSONEncoder, json_dumps_params={"indent": 1})
    return render(request, template, context)


def error_page(request, error: ServiceError):
    if wants_json(request):
        return JsonResponse(error.as_dict(), status=error.status_code)
    return render(request, "error.html", {"error": error}, status=error.status_code)

"""Helpers every portal page uses: the JSON twin, list pages and error pages from service errors."""

from django.core.serializers.json import DjangoJSONEncoder
from django.http import JsonResponse
from django.shortcuts import render

from .errors import ServiceError
from .listing import run_listing


def wants_json(request):
    return "json" in request.GET or "application/json" in request.headers.get("Accept", "")


def render_page(request, template, context, *, json_data, status=200):
    """Render `template`, or the same data as JSON when asked (`?json` or Accept: application/json)."""
    if wants_json(request):
        return JsonResponse(json_data, encoder=DjangoJSONEncoder, json_dumps_params={"indent": 1}, status=status)
    return render(request, template, context, status=status)


def error_page(request, error: ServiceError):
    if wants_json(request):
        return JsonResponse(error.as_dict(), status=error.status_code)
    return render(request, "error.html", {"error": error}, status=error.status_code)


def list_page(request, template, *, filterset_class, queryset, columns, context=None, decorate=None):
    """A list page: the grammar's listing as HTML (facets, chips, pager) or as its JSON twin.

    `decorate(rows)` may add derived values to the rows (the same for HTML and JSON)."""
    try:
        listing = run_listing(request, filterset_class=filterset_class, queryset=queryset, columns=columns)
    except ServiceError as error:
        return error_page(request, error)
    if decorate:
        listing.rows = decorate(listing.rows)
    data = listing.envelope()
    page_context = {"listing": listing, "data": data, "rows": listing.rows, **(context or {})}
    return render_page(request, template, page_context, json_data=data)

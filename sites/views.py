"""POST /api/v1/sites/<name>/space: a pilot (or storage agent) reports its site's storage space.

A plain view like the pilot protocol's: it authenticates with the pilot credential
(Authorization: Bearer <token>) bound to the site, which DRF's user authentication
would refuse.
"""

import json

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from pandamon.errors import InvalidInput, ServiceError

from .services import pilot_site, record_storage_space


@csrf_exempt
@require_POST
def report_space(request, name):
    token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    try:
        site = pilot_site(site_name=name, token=token)
        body = _json_object(request.body)
        record_storage_space(
            site=site, used_bytes=body.get("used_bytes"), free_bytes=body.get("free_bytes"),
            total_bytes=body.get("total_bytes"), reported_by=f"pilot@{body.get('node') or 'unknown'}",
        )  # fmt: skip
    except ServiceError as error:
        return JsonResponse({"detail": error.message}, status=error.status_code)
    return JsonResponse({"site": site.name, "recorded": True})


def _json_object(raw):
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidInput("give a JSON object with used_bytes, free_bytes and total_bytes")
    return body

"""PanDA's REST API v1 envelope, for the unchanged PanDA client and pilot (docs/panda-compat.md).

panda-client 2.2 and pilot3 call `/api/v1/<module>/<function>` and expect every answer as
`{"success": bool, "message": str, "data": ...}` with datetimes as `{"__datetime__": iso}`
(reference/panda-wire.md §1). These endpoints are thin translations: each maps PanDA's
names onto our own services, so there is one path for each write.

Errors keep the envelope (`success: false` and the reason in `message`) and our 4xx status
codes, so the client reports the failure and a script sees why. The client's basic mode treats
any `success: false` as a failure, whatever the status.
"""

import datetime
import json

from django.http import HttpResponse
from rest_framework import exceptions
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from .errors import InvalidInput, ServiceError


class PandaJSONEncoder(json.JSONEncoder):
    def default(self, o):
        if isinstance(o, datetime.datetime):
            # PanDA's datetimes are naive UTC; an aware one is converted first, never just relabelled.
            if o.tzinfo is not None:
                o = o.astimezone(datetime.UTC).replace(tzinfo=None)
            return {"__datetime__": o.isoformat()}
        if isinstance(o, datetime.date):
            return o.isoformat()
        return super().default(o)


def envelope(data=None, *, success=True, message="", status=200):
    body = json.dumps({"success": success, "message": message, "data": data}, cls=PandaJSONEncoder)
    return HttpResponse(body, status=status, content_type="application/json")


def failure(message, *, status=400, data=None):
    return envelope(data, success=False, message=message, status=status)


class PandaEndpoint(APIView):
    """A PanDA API v1 function. Subclasses implement `call(request, params)` and return an
    HttpResponse (usually `envelope(...)`); params are the JSON body of a POST or the query of a
    GET (repeated keys become lists, as the client sends them)."""

    parser_classes = [JSONParser]
    # Reads are open to anonymous callers; each write calls require_user() and its service checks roles.
    permission_classes = [AllowAny]
    http_method_names = ["get", "post", "options"]
    method = "post"

    def get(self, request, *args, **kwargs):
        return self._dispatch_call(request, "get", _query_params(request))

    def post(self, request, *args, **kwargs):
        data = request.data
        if not isinstance(data, dict):
            raise InvalidInput("the request body must be a JSON object")
        return self._dispatch_call(request, "post", data)

    def _dispatch_call(self, request, method, params):
        if method != self.method:
            return failure(f"use {self.method.upper()} for this function", status=405)
        return self.call(request, params)

    def call(self, request, params):  # pragma: no cover - every endpoint defines it
        raise NotImplementedError

    def error_data(self, exc):
        """The `data` of a refusal: None, unless a function answers an error code there (task functions do)."""
        return None

    def handle_exception(self, exc):
        if isinstance(exc, ServiceError):
            return failure(exc.message, status=exc.status_code, data=self.error_data(exc))
        if isinstance(exc, exceptions.APIException):
            status = exc.status_code
            if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
                status = 401
            return failure(_detail_text(exc.detail), status=status, data=self.error_data(exc))
        return super().handle_exception(exc)


def _query_params(request):
    return {key: values if len(values) > 1 else values[0] for key, values in request.query_params.lists()}


def _detail_text(detail):
    if isinstance(detail, list | tuple):
        return "; ".join(_detail_text(item) for item in detail)
    if isinstance(detail, dict):
        return "; ".join(f"{key}: {_detail_text(value)}" for key, value in detail.items())
    return str(detail)


def require_user(request):
    """Writes need an authenticated user: an API token as `Authorization: Bearer <token>`
    (PANDA_AUTH=oidc with the token in PANDA_AUTH_ID_TOKEN) or a session."""
    if not request.user or not request.user.is_authenticated:
        raise exceptions.NotAuthenticated(
            "this function needs credentials: send an API token as 'Authorization: Bearer <token>' "
            "(panda-client: PANDA_AUTH=oidc and PANDA_AUTH_ID_TOKEN=<token>)"
        )
    return request.user


def int_param(params, name, *, required=True):
    raw = params.get(name)
    if raw in (None, "", "NULL"):
        if required:
            raise InvalidInput(f"{name} is required")
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be an integer, got {str(raw)[:40]!r}") from None


def int_list_param(params, name, *, limit=10000):
    raw = params.get(name)
    if raw is None:
        raise InvalidInput(f"{name} is required")
    values = raw if isinstance(raw, list) else [raw]
    if len(values) > limit:
        raise InvalidInput(f"{name}: at most {limit} values in one call")
    try:
        return [int(value) for value in values]
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a list of integers") from None

"""Shared REST API pieces: the error envelope and the keyset paginator."""

from rest_framework import status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import ServiceError


def exception_handler(exc, context):
    """Every API error answers `{"error": "<one line>", "details": ...}` with a 4xx."""
    if isinstance(exc, ServiceError):
        return Response(exc.as_dict(), status=exc.status_code)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(data, dict) and "detail" in data and len(data) == 1:
        response.data = {"error": str(data["detail"])}
    elif response.status_code == status.HTTP_400_BAD_REQUEST:
        response.data = {"error": "invalid input: " + _first_message(data), "details": data}
    return response


def _first_message(data):
    """A one-line summary of a nested DRF validation error."""
    path = []
    while True:
        if isinstance(data, dict) and data:
            key = next(iter(data))
            path.append(str(key))
            data = data[key]
        elif isinstance(data, list) and data:
            non_empty = [(i, item) for i, item in enumerate(data) if item]
            if not non_empty:
                return "invalid value"
            index, data = non_empty[0]
            if not isinstance(data, str):
                path.append(str(index))
        else:
            break
    where = ".".join(path)
    return f"{where}: {data}" if where else str(data)


class KeysetPagination(CursorPagination):
    """Keyset (cursor) pages: stable and cheap however deep the listing goes."""

    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 1000

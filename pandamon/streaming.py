"""NDJSON: very long listings streamed one JSON object per line, never held in memory.

The rows come from a queryset iterated with a server-side cursor on PostgreSQL
(`iterator(chunk_size=...)`), so the files of a 100,000-file dataset go out in
chunks while the process stays at a constant size.
"""

import json

from django.core.serializers.json import DjangoJSONEncoder
from django.http import StreamingHttpResponse
from rest_framework.renderers import BaseRenderer

NDJSON = "application/x-ndjson"
CHUNK_ROWS = 2000


class NDJSONRenderer(BaseRenderer):
    """Lets clients ask for NDJSON with `Accept: application/x-ndjson`; errors still come as one JSON line."""

    media_type = NDJSON
    format = "ndjson"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return (json.dumps(data, cls=DjangoJSONEncoder) + "\n").encode()


def wants_stream(request):
    flag = request.query_params.get("stream", "").lower()
    return flag in ("1", "true", "yes") or getattr(request.accepted_renderer, "format", "") == "ndjson"


def ndjson_response(rows, to_dict=dict):
    """Stream the rows of a values() queryset, each turned into an object by `to_dict`."""

    def lines():
        encoder = DjangoJSONEncoder(separators=(",", ":"))
        batch = []
        for row in rows.iterator(chunk_size=CHUNK_ROWS):
            batch.append(encoder.encode(to_dict(row)))
            if len(batch) == CHUNK_ROWS:
                yield "\n".join(batch) + "\n"
                batch = []
        if batch:
            yield "\n".join(batch) + "\n"

    response = StreamingHttpResponse(lines(), content_type=NDJSON)
    response["Cache-Control"] = "no-store"
    return response

"""What batch pilots download: the wrapper script and the pilot package (sites/factory/wrapper.py).

Both are public like the pilot's source: they hold no secret (the credential reaches a pilot
through its batch job's environment), and a worker node must fetch them without one.
"""

from django.http import HttpResponse, HttpResponseNotModified
from django.views.decorators.http import require_safe

from . import VERSION
from .wrapper import pilot_tarball, wrapper_script


@require_safe
def wrapper(request):
    response = HttpResponse(wrapper_script(), content_type="text/x-shellscript; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="wrapper.sh"'
    response["X-Pilot-Factory-Version"] = VERSION
    return response


@require_safe
def tarball(request):
    data, digest = pilot_tarball()
    etag = f'"{digest}"'
    if request.headers.get("If-None-Match") == etag:
        return HttpResponseNotModified(headers={"ETag": etag})
    response = HttpResponse(data, content_type="application/gzip")
    response["Content-Disposition"] = 'attachment; filename="pilot.tar.gz"'
    response["ETag"] = etag
    response["X-Content-SHA256"] = digest
    return response

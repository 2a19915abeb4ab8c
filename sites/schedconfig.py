"""The queue and storage descriptions PanDA pilots read before asking for work, generated from sites.

PanDA keeps them in CRIC ("schedconfig" for queues, "ddmendpoints" for storage); pilot3 fetches
them over HTTP (reference/panda-wire.md §2) and aborts unless the queue is `ACTIVE`. Here each
Site is one queue and its storage element one endpoint, named after the site, which is the
`ddmEndPointIn/Out` getJob hands out (jobs/protocol.py).

Stage-in and stage-out go through the pilot's `mv` copytool on a site whose storage is a
directory the worker nodes see (a shared filesystem): `mv_final_destination` in `catchall` tells
it to move outputs into that directory, under Rucio's deterministic path, and the final report's
`surl` is what the catalogue records. A site whose storage is only an HTTP(S) door is described
with `gfalcopy` over `davs`/`https`, which needs gfal2 on the worker nodes.
"""

from urllib.parse import urlsplit

from django.http import Http404, JsonResponse
from django.urls import path, re_path
from django.views.decorators.http import require_GET

from .choices import SiteStatus
from .models import Site

ACTIVITIES = ("pr", "pw", "pl", "read_lan", "write_lan", "read_wan", "write_wan")


def queue_description(site):
    """One queue as pilot3's QueueData reads it (pilot/info/queuedata.py), plus what we know of it."""
    copytool = _copytool(site)
    return {
        "name": site.name,
        "nickname": site.name,
        "panda_resource": site.name,
        "site": site.name,
        "atlas_site": site.name,
        "cloud": site.cloud.name,
        "tier_level": site.tier,
        # CRIC's `state` says the queue exists; whether it gets work is `status` (online, offline, test, brokeroff).
        "state": "ACTIVE",
        "status": site.status,
        "type": "unified",
        "maxwdir": site.max_disk_mb,
        "maxinputsize": site.max_disk_mb,
        "maxrss": site.max_memory_mb,
        "maxtime": site.max_walltime_s,
        "corecount": site.cores,
        "timefloor": 0,
        "pledgedcpu": 0,
        "catchall": "mv_final_destination" if copytool == "mv" else "",
        "copytools": {copytool: {"setup": ""}},
        "acopytools": {"pr": [copytool], "pw": [copytool], "pl": [copytool]},
        "astorages": {"pr": [site.name], "pw": [site.name], "pl": [site.name]},
        "aprotocols": {},
        "params": {},
        "is_cvmfs": False,
        "container_type": "",
        "container_options": "",
        "appdir": "",
        "environ": "",
        "direct_access_lan": False,
        "direct_access_wan": False,
        "allow_lan": True,
        "allow_wan": False,
        "use_pcache": False,
        "releases": list(site.releases or []),
        "max_running_jobs": site.max_running_jobs,
        "offline": site.status == SiteStatus.OFFLINE,
    }


def storage_description(site):
    """The site's storage element as a CRIC ddmendpoint (pilot/info/storagedata.py)."""
    protocol = _protocol(site)
    protocols = {activity: [protocol] for activity in ACTIVITIES if protocol}
    return {
        "name": site.name,
        "site": site.name,
        "type": "DATADISK",
        "token": "",
        "state": "ACTIVE",
        "is_deterministic": True,
        "resource": {"endpoint": protocol["endpoint"] + protocol["path"] if protocol else ""},
        # pilot3 needs lists of dicts here: lists of lists crash its stage-out (panda-wire.md §2).
        "arprotocols": protocols,
        "rprotocols": {"0": {**protocol, "activities": [[a, 1] for a in ACTIVITIES]}} if protocol else {},
    }


def _copytool(site):
    return "gfalcopy" if _directory(site) is None and site.storage_http_url else "mv"


def _directory(site):
    """The storage directory worker nodes see, or None when the storage is only reachable over HTTP."""
    endpoint = site.storage_endpoint
    if not endpoint or endpoint.startswith(("http://", "https://", "davs://")):
        return None
    return urlsplit(endpoint).path if endpoint.startswith("file://") else endpoint


def _protocol(site):
    directory = _directory(site)
    if directory is not None:
        return {"endpoint": "file://localhost", "path": directory.rstrip("/") or "/", "flavour": "POSIX"}
    url = site.storage_http_url or site.storage_endpoint
    if not url:
        return None
    parts = urlsplit(url)
    scheme = "davs" if parts.scheme == "https" else parts.scheme
    return {"endpoint": f"{scheme}://{parts.netloc}", "path": parts.path.rstrip("/") or "/", "flavour": "WEBDAV"}


def _sites():
    return Site.objects.select_related("cloud").order_by("name")


def _site_or_404(name):
    site = _sites().filter(name=name).first()
    if site is None:
        raise Http404(f"unknown queue '{name}'")
    return site


@require_GET
def queue_all_json(request, name):
    """/cache/schedconfig/<queue>.all.json: the queue alone (pilot3's --queuedata-url)."""
    return JsonResponse(queue_description(_site_or_404(name)))


@require_GET
def queue_json(request, name):
    """/cache/schedconfig/<queue>.json: CRIC's form, keyed by queue name (pilot3's queues_url)."""
    site = _site_or_404(name)
    return JsonResponse({site.name: queue_description(site)})


@require_GET
def all_queues_json(request):
    """/cache/schedconfig.json: every queue, keyed by name (CRIC's cric_pandaqueues.json)."""
    return JsonResponse({site.name: queue_description(site) for site in _sites()})


@require_GET
def ddmendpoints_json(request):
    """/cache/ddmendpoints.json: every storage endpoint, keyed by name (pilot3's storages_url)."""
    return JsonResponse({site.name: storage_description(site) for site in _sites()})


urlpatterns = [
    re_path(r"^schedconfig/(?P<name>[\w.-]+)\.all\.json$", queue_all_json, name="schedconfig-queue-all"),
    re_path(r"^schedconfig/(?P<name>[\w.-]+)\.json$", queue_json, name="schedconfig-queue"),
    path("schedconfig.json", all_queues_json, name="schedconfig-all"),
    path("ddmendpoints.json", ddmendpoints_json, name="ddmendpoints"),
]

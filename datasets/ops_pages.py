"""Portal pages of DDM operations: priorities and user areas, channel health, cleaning, the dashboard.

Each page has its JSON twin; operators' writes are POST forms calling the same services as the API,
which check the data_operator role (datasets.services.priorities, .channels, .user_areas, .cleaning)."""

from django.utils import timezone

from pandamon import plots
from pandamon.errors import InvalidInput, ServiceError
from pandamon.pages import error_page, list_page, render_page

from . import dashboard_selectors
from . import ops_selectors as selectors
from .choices import Activity
from .ddm_filters import DeletionProposalFilterSet
from .ddm_pages import _act, _context
from .models import DeletionProposal
from .policy_choices import ChannelHealth, DeletionReason, ProposalState
from .services import channels as channel_service
from .services import cleaning, user_areas
from .services import priorities as priority_service

PROPOSAL_COLUMNS = ("id", "dataset__name", "site__name", "reason", "detail", "state", "bytes", "proposed_at",
                    "decided_by", "decided_at", "executed_at", "note")  # fmt: skip


def _no_parameters(request):
    if set(request.GET) - {"json"}:
        raise InvalidInput("this page takes no parameter")


def _int_or_none(value, name):
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise InvalidInput(f"{name}: {value!r} is not a whole number") from exc


# ---------------------------------------------------------------- priorities and user areas


def priorities(request):
    if request.method == "POST":
        return _act(request, lambda: _priority_post(request), "ddm-priorities-page")
    try:
        _no_parameters(request)
    except ServiceError as error:
        return error_page(request, error)
    now = timezone.now()
    data = {"activities": selectors.activity_queue(now), "user_areas": selectors.user_area_rows(),
            "waiting": selectors.rerouted_now()}  # fmt: skip
    context = _context(request, data=data, max_rank=priority_service.MAX_RANK, activities=Activity)
    return render_page(request, "ddm/priorities.html", context, json_data=data)


def _priority_post(request):
    post = request.POST
    if "site" in post:
        quota = _int_or_none(post.get("quota_gb"), "quota_gb")
        return user_areas.set_quota(user=request.user, site_name=post["site"],
                                    quota_bytes=None if quota is None else quota * 10**9)  # fmt: skip
    changes = {a: _int_or_none(post.get(f"rank_{a}"), a) for a in Activity.values if post.get(f"rank_{a}")}
    return priority_service.set_ranks(user=request.user, changes=changes)


# ---------------------------------------------------------------- channel health


def channels(request):
    if request.method == "POST":
        return _act(request, lambda: _channel_post(request), "ddm-channels-page")
    try:
        _no_parameters(request)
    except ServiceError as error:
        return error_page(request, error)
    health = selectors.channel_health(timezone.now())
    data = {"window_from": health["from"], "channels": health["rows"], "paused_sites": selectors.paused_sites(),
            "waiting": selectors.rerouted_now()}  # fmt: skip
    context = _context(request, data=data, healths=ChannelHealth)
    return render_page(request, "ddm/channel_health.html", context, json_data=data)


def _channel_post(request):
    post = request.POST
    paused = {"pause": True, "resume": False}.get(post.get("do", ""))
    if paused is None:
        raise InvalidInput("do: pause or resume")
    reason = post.get("reason", "")
    if post.get("site"):
        return channel_service.set_site_paused(user=request.user, site_name=post["site"], paused=paused, reason=reason)
    return channel_service.set_channel_paused(user=request.user, source=post.get("source", ""),
                                              destination=post.get("destination", ""), paused=paused,
                                              reason=reason)  # fmt: skip


# ---------------------------------------------------------------- cleaning


def deletions(request):
    if request.method == "POST":
        return _act(request, lambda: _deletion_post(request), request.get_full_path())
    return list_page(
        request, "ddm/deletions.html", filterset_class=DeletionProposalFilterSet,
        queryset=DeletionProposal.objects.all(), columns=PROPOSAL_COLUMNS,
        context=_context(request, noun="proposal", states=ProposalState, reasons=DeletionReason,
                         quick_states=ProposalState.values),
    )  # fmt: skip


def _deletion_post(request):
    approve = {"approve": True, "reject": False}.get(request.POST.get("do", ""))
    if approve is None:
        raise InvalidInput("do: approve or reject")
    ids = [_int_or_none(value, "ids") for value in request.POST.getlist("ids") if value]
    return cleaning.decide(user=request.user, ids=ids, approve=approve)


# ---------------------------------------------------------------- the dashboard


def dashboard(request):
    try:
        _no_parameters(request)
    except ServiceError as error:
        return error_page(request, error)
    data = dashboard_selectors.dashboard(timezone.now())
    clouds = sorted({row["cloud"] for row in data["volume"]["rows"]})
    # GB, or MB for a small catalog, so the bars are never all rounded to nothing.
    unit, scale = ("GB", 1e9) if max((r["bytes"] for r in data["volume"]["rows"]), default=0) >= 1e9 else ("MB", 1e6)
    series = {}
    for row in data["volume"]["rows"]:
        values = series.setdefault(f"{row['tier']} {row['media']}", [0] * len(clouds))
        values[clouds.index(row["cloud"])] += round(row["bytes"] / scale, 3)
    figure = plots.stacked_category_histogram(clouds, series, title="Data volume per cloud, by tier and media",
                                              x_title="cloud", y_title=unit)  # fmt: skip
    context = _context(request, data=data, figure=figure, proposal_states=ProposalState)
    return render_page(request, "ddm/dashboard.html", context, json_data=data)

"""Portal pages of the data distribution policy: placement rules, their decisions and placements, and the
Tier-2 preferences (docs/ddm-policy.md). Each page has its JSON twin; writes are POST forms calling the same
services as the API (datasets.services.policy_admin), which check the data_operator role."""

import json

from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from pandamon import roles
from pandamon.errors import InvalidInput, PermissionDenied, ServiceError
from pandamon.pages import error_page, list_page, render_page

from . import ddm_selectors as selectors
from .choices import Activity
from .ddm_filters import PlacementDecisionFilterSet, PlacementRuleFilterSet, PlacementTargetFilterSet
from .models import PlacementDecision, PlacementRule, PlacementTarget
from .policy_choices import DecisionState, Media, PreferenceKind, TargetKind, TargetOutcome
from .services import policy_admin
from .services.policy import CONDITION_KEYS

HELP = {"targets": TargetKind, "media": Media, "decision_states": DecisionState, "outcomes": TargetOutcome,
        "preference_kinds": PreferenceKind, "activities": Activity, "condition_keys": CONDITION_KEYS}  # fmt: skip
RULE_EXAMPLE = json.dumps({"name": "aod-to-all-t1", "conditions": {"format": "AOD", "category": "mc|csc"},
                           "target": "all_tier1", "media": "disk", "activity": "production", "priority": 3})  # fmt: skip


def may_operate(user):
    return roles.is_admin(user) or roles.has_role(user, roles.DATA_OPERATOR)


def _context(request, **extra):
    return {"help": HELP, "may_operate": may_operate(request.user), **extra}


def _act(request, action, then):
    """Run a write for a POST form; a refusal is the error page with its 4xx."""
    if not request.user.is_authenticated:
        return error_page(request, PermissionDenied("log in to change the data distribution policy"))
    try:
        action()
    except ServiceError as error:
        return error_page(request, error)
    return redirect(then)


def _json_field(request, name):
    try:
        value = json.loads(request.POST.get(name, ""))
    except ValueError as exc:
        raise InvalidInput(f"{name}: not valid JSON ({exc})") from exc
    return value


# ---------------------------------------------------------------- rules


def rule_list(request):
    if request.method == "POST":
        return _act(request, lambda: policy_admin.create_rule(user=request.user, spec=_json_field(request, "rule")),
                    "ddm-rules-page")  # fmt: skip
    return list_page(
        request, "ddm/rule_list.html", filterset_class=PlacementRuleFilterSet, queryset=PlacementRule.objects.all(),
        columns=selectors.RULE_COLUMNS, decorate=selectors.with_rule_counts,
        context=_context(request, noun="rule", example=RULE_EXAMPLE),
    )  # fmt: skip


def rule_detail(request, pk):
    try:
        if set(request.GET) - {"json"}:
            raise InvalidInput("this page takes no parameter (see /ddm/decisions/?rule=<name> for its decisions)")
        rule = selectors.rule_detail(pk)
    except ServiceError as error:
        return error_page(request, error)
    recent = list(PlacementDecision.objects.filter(rule_id=pk).order_by("-id").values(*selectors.DECISION_COLUMNS)[:50])
    data = {"rule": rule, "recent_decisions": recent}
    editable = {key: rule[key] for key in policy_admin.RULE_FIELDS}
    context = _context(request, rule=rule, data=data, recent=recent, editable=json.dumps(editable, indent=1),
                       target_text=TargetKind(rule["target"]).label)  # fmt: skip
    return render_page(request, "ddm/rule_detail.html", context, json_data=data)


@require_POST
def rule_action(request, pk, action):
    """update (the JSON of the changed fields), enable, disable, apply (retroactively), delete."""
    user = request.user
    actions = {
        "update": lambda: policy_admin.update_rule(user=user, pk=pk, spec=_json_field(request, "rule")),
        "enable": lambda: policy_admin.update_rule(user=user, pk=pk, spec={"enabled": True}),
        "disable": lambda: policy_admin.update_rule(user=user, pk=pk, spec={"enabled": False}),
        "apply": lambda: policy_admin.request_retroactive(user=user, pk=pk),
        "delete": lambda: policy_admin.delete_rule(user=user, pk=pk),
    }
    then = "/ddm/rules/" if action == "delete" else f"/ddm/rules/{pk}/"
    return _act(request, actions[action], then)


# ---------------------------------------------------------------- decisions and placements


def decision_list(request):
    return list_page(
        request, "ddm/decision_list.html", filterset_class=PlacementDecisionFilterSet,
        queryset=PlacementDecision.objects.all(), columns=selectors.DECISION_COLUMNS,
        context=_context(request, noun="decision", quick_states=DecisionState.values),
    )  # fmt: skip


def placement_list(request):
    return list_page(
        request, "ddm/placement_list.html", filterset_class=PlacementTargetFilterSet,
        queryset=PlacementTarget.objects.all(), columns=selectors.TARGET_COLUMNS,
        context=_context(request, noun="placement", quick_states=TargetOutcome.values),
    )  # fmt: skip


# ---------------------------------------------------------------- Tier-2 preferences


def preferences(request):
    if request.method == "POST":
        post = request.POST
        if post.get("remove"):
            action = lambda: policy_admin.remove_preference(user=request.user, pk=_int(post["remove"]))  # noqa: E731
        else:
            action = lambda: policy_admin.add_preference(  # noqa: E731
                user=request.user, site_name=post.get("site", ""), kind=post.get("kind", ""),
                pattern=post.get("pattern", ""),
            )  # fmt: skip
        return _act(request, action, "ddm-preferences-page")
    if set(request.GET) - {"json"}:
        return error_page(request, InvalidInput("this page takes no parameter"))
    rows = selectors.preference_overview()
    data = {"sites": rows}
    context = _context(request, rows=rows, data=data, tier2s=selectors.tier2_names())
    return render_page(request, "ddm/preferences.html", context, json_data=data)


def _int(value):
    try:
        return int(value)
    except ValueError as exc:
        raise InvalidInput(f"{value!r} is not an id") from exc

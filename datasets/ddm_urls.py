"""Pages of the data distribution policy and DDM operations (docs/ddm-policy.md)."""

from django.urls import path

from . import ddm_pages, ops_pages

urlpatterns = [
    path("ddm/", ops_pages.dashboard, name="ddm-dashboard"),
    path("ddm/rules/", ddm_pages.rule_list, name="ddm-rules-page"),
    path("ddm/rules/<int:pk>/", ddm_pages.rule_detail, name="ddm-rule-page"),
    path("ddm/rules/<int:pk>/<str:action>", ddm_pages.rule_action, name="ddm-rule-action"),
    path("ddm/decisions/", ddm_pages.decision_list, name="ddm-decisions-page"),
    path("ddm/placements/", ddm_pages.placement_list, name="ddm-placements-page"),
    path("ddm/preferences/", ddm_pages.preferences, name="ddm-preferences-page"),
    path("ddm/priorities/", ops_pages.priorities, name="ddm-priorities-page"),
    path("ddm/channels/", ops_pages.channels, name="ddm-channels-page"),
    path("ddm/deletions/", ops_pages.deletions, name="ddm-deletions-page"),
]

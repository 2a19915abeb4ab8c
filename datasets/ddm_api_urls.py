"""REST API of the data distribution policy and DDM operations, under /api/v1/ (docs/ddm-policy.md)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import ddm_api, ops_api

router = SimpleRouter()
router.register("placement-rules", ddm_api.PlacementRuleViewSet, basename="placement-rule")
router.register("placement-decisions", ddm_api.PlacementDecisionViewSet, basename="placement-decision")
router.register("site-preferences", ddm_api.SitePreferenceViewSet, basename="site-preference")

urlpatterns = [
    path("ddm/priorities/", ops_api.activity_priorities, name="api-ddm-priorities"),
    path("ddm/channels/", ops_api.channel_health, name="api-ddm-channels"),
    path("ddm/sites/pause/", ops_api.pause_site, name="api-ddm-site-pause"),
    path("ddm/user-areas/", ops_api.user_area, name="api-ddm-user-areas"),
    path("ddm/deletions/decide/", ops_api.decide_deletions, name="api-ddm-deletions-decide"),
    *router.urls,
]

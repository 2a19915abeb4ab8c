from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from alarms.api import AlarmViewSet
from datasets.api import ContainerViewSet, DatasetViewSet, FileViewSet, ReplicaViewSet
from datasets.flow_api import (
    CallbackViewSet,
    ConsistencyCheckViewSet,
    SubscriptionViewSet,
    TransferChannelViewSet,
    TransferViewSet,
)
from jobs import pilot_views
from jobs.api import JobViewSet
from quotas import api as quota_api
from sites import views as site_views
from sites.api import SiteViewSet
from tasks import api as task_api

from . import login_views, views

router = DefaultRouter()
router.register("jobs", JobViewSet, basename="job")
router.register("sites", SiteViewSet, basename="site")
router.register("datasets", DatasetViewSet, basename="dataset")
router.register("containers", ContainerViewSet, basename="container")
router.register("files", FileViewSet, basename="file")
router.register("replicas", ReplicaViewSet, basename="replica")
router.register("subscriptions", SubscriptionViewSet, basename="subscription")
router.register("transfers", TransferViewSet, basename="transfer")
router.register("transfer-channels", TransferChannelViewSet, basename="transfer-channel")
router.register("callbacks", CallbackViewSet, basename="callback")
router.register("consistency-checks", ConsistencyCheckViewSet, basename="consistency-check")
router.register("alarms", AlarmViewSet, basename="alarm")
router.register("tasks", task_api.TaskViewSet, basename="task")

# The PanDA pilot protocol (legacy paths, as real pilots call them). First in the list: these are
# the calls of every pilot every few seconds, and Django tries the patterns in order (behind the
# ~200 page and API patterns, resolving getJob cost 0.4 ms of Python a call; bench/profile_getjob.py).
PILOT_PROTOCOL = [
    path("getJob", pilot_views.get_job, name="pilot-getjob"),
    path("updateJob", pilot_views.update_job, name="pilot-updatejob"),
    path("getStatus", pilot_views.get_status, name="pilot-getstatus"),
    path("updateWorkerPilotStatus", pilot_views.update_worker_pilot_status, name="pilot-workerstatus"),
]

urlpatterns = [
    path("server/panda/", include(PILOT_PROTOCOL)),
    path("", views.home, name="home"),
    path("search/", views.search, name="search"),
    path("", include("jobs.urls")),
    path("", include("datasets.urls")),
    path("", include("datasets.ddm_urls")),
    path("", include("pandamon.site_urls")),
    path("", include("pandamon.scheduler_urls")),
    path("", include("alarms.urls")),
    path("", include("quotas.urls")),
    path("", include("pandamon.plot_urls")),
    path("", include("tasks.urls")),
    path("workers/", views.worker_runs, name="worker-runs"),
    path("login/", login_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/quotas/me", quota_api.my_quotas, name="api-my-quotas"),
    path("api/v1/sites/<str:name>/space", site_views.report_space, name="api-site-space"),
    path("api/v1/auth/token", login_views.ObtainTokenView.as_view(), name="api-token"),
    path("api/v1/cache/", task_api.CacheUploadView.as_view(), name="api-cache"),
    # PanDA's own API v1 functions, for the unchanged panda-client and pilot (docs/panda-compat.md).
    path("api/v1/job/", include("jobs.panda_urls")),
    path("api/v1/system/", include("jobs.panda_system_urls")),
    path("api/v1/task/", include("tasks.panda_urls")),
    path("api/v1/pilot/", include("jobs.pilot_api")),
    path("api/v1/", include("datasets.ddm_api_urls")),
    path("api/v1/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Queue and storage descriptions for PanDA pilots, CRIC-style (sites/schedconfig.py).
    path("cache/", include("sites.schedconfig")),
    # The script cache: users' code, fetched by pilots (tasks/api.py, docs/tasks.md).
    re_path(r"^cache/(?P<sha256>[0-9a-f]{64})$", task_api.cache_file, name="cache-file"),
]

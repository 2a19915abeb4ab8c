"""Pages about sites, worker nodes, users and usage (they combine several apps, so they live in pandamon/)."""

from django.urls import path

from . import site_pages, user_pages

urlpatterns = [
    path("sites/", site_pages.site_list, name="sites-page"),
    path("sites/<str:name>/", site_pages.site_detail, name="site-page"),
    path("wns/<str:site>/", site_pages.node_list, name="nodes-page"),
    path("users/", user_pages.user_list, name="users-page"),
    path("users/<str:username>/", user_pages.user_detail, name="user-page"),
    path("summary/usage/", user_pages.usage, name="usage-page"),
]

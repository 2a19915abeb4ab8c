from django.urls import path

from . import site_pages

urlpatterns = [
    path("sites/", site_pages.site_list, name="sites-page"),
    path("sites/<str:name>/", site_pages.site_detail, name="site-page"),
]

"""The Django admin covers every model, and each list page (with its search) renders."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.test import Client

from ..factories import JobFactory, SiteFactory, UserFactory

pytestmark = pytest.mark.django_db
OUR_APPS = ("sites", "jobs", "datasets", "quotas", "alarms", "pandamon")


def test_every_model_of_ours_is_in_the_admin():
    ours = [model for app in OUR_APPS for model in apps.get_app_config(app).get_models()]
    missing = [model.__name__ for model in ours if model not in admin.site._registry]
    assert missing == []


@pytest.mark.parametrize("model", [m for a in OUR_APPS for m in apps.get_app_config(a).get_models()],
                         ids=lambda model: model.__name__)  # fmt: skip
def test_admin_list_and_search_render(model):
    JobFactory(computing_site=SiteFactory(name="BNL"))
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
    assert client.get(url).status_code == 200
    if admin.site._registry[model].search_fields:
        assert client.get(url, {"q": "BNL"}).status_code == 200
    assert client.get(url + "add/").status_code in (200, 403)

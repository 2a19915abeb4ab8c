import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from sites.services import clear_pilot_caches, create_pilot_credential

from .factories import SiteFactory, UserFactory


@pytest.fixture(autouse=True)
def _fresh_pilot_caches():
    clear_pilot_caches()
    yield
    clear_pilot_caches()


@pytest.fixture
def user(db):
    return UserFactory(username="alice")


@pytest.fixture
def api(user):
    """An API client authenticated as `user` with a Bearer token."""
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token.key}")
    return client


@pytest.fixture
def site(db):
    return SiteFactory(name="BNL", tier=1)


@pytest.fixture
def pilot_token(site):
    _, token = create_pilot_credential(name="factory-bnl", sites=[site])
    return token

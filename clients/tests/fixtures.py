"""API clients with keys in each default group, for every app's tests."""

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from clients import services
from clients.lookup import _cache
from valhalla_ops.principals import SYSTEM


def tampered(key: str) -> str:
    """The key with its last character changed: always a different, badly checksummed key."""
    return key[:-1] + ("A" if key[-1] != "A" else "B")


@pytest.fixture(autouse=True)
def _fresh_key_cache():
    """Per-process key caches must not leak between tests (ids are reused after rollback)."""
    _cache.clear()
    services._last_touch.clear()
    yield
    _cache.clear()
    services._last_touch.clear()


@pytest.fixture
def make_api_client(db):
    """make(name=..., groups=["ops-operator"]) -> (ApiClient, plaintext key)."""
    counter = iter(range(1, 10_000))

    def make(
        *,
        name: str | None = None,
        groups: tuple[str, ...] = (),
        client_type: str = "service",
        **fields,
    ):
        found = list(Group.objects.filter(name__in=groups))
        return services.create_client(
            actor=SYSTEM,
            name=name or f"client-{next(counter)}",
            client_type=client_type,
            groups=found,
            **fields,
        )

    return make


def _caller(make_api_client, group: str) -> APIClient:
    client, key = make_api_client(name=f"{group}-caller", groups=(group,))
    caller = APIClient()
    caller.credentials(HTTP_X_API_KEY=key)
    caller.api_client = client  # type: ignore[attr-defined]
    return caller


@pytest.fixture
def viewer(make_api_client) -> APIClient:
    """An APIClient authenticated with a key in ops-viewer."""
    return _caller(make_api_client, "ops-viewer")


@pytest.fixture
def operator(make_api_client) -> APIClient:
    return _caller(make_api_client, "ops-operator")


@pytest.fixture
def ops_admin(make_api_client) -> APIClient:
    return _caller(make_api_client, "ops-admin")


@pytest.fixture
def nobody(make_api_client) -> APIClient:
    """Authenticated, but in no group: every call is a 403."""
    _client, key = make_api_client(name="nobody")
    caller = APIClient()
    caller.credentials(HTTP_X_API_KEY=key)
    return caller

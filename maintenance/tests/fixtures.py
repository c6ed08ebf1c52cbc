"""Maintenance fixtures for every app's tests: a clean cached state, and a mode switch."""

from collections.abc import Callable, Iterator

import pytest
from django.db import transaction

from maintenance import services, state
from maintenance.models import MaintenanceState
from valhalla_ops.principals import SYSTEM


@pytest.fixture(autouse=True)
def _fresh_maintenance_state() -> Iterator[None]:
    """No cached mode leaks from one test (or one test run sharing Redis) into the next."""
    state.forget()
    yield
    state.forget()


@pytest.fixture
def set_maintenance_mode(db) -> Callable[..., MaintenanceState]:
    """set_maintenance_mode("read_only", reason=...) -> the state, published to the caches.

    Works inside the test's transaction: the cache is refreshed at once instead of on commit.
    """

    def switch(mode: str, *, reason: str = "test") -> MaintenanceState:
        with transaction.atomic():
            result = services.set_mode(actor=SYSTEM, mode=mode, reason=reason)
        state.publish()
        return result

    return switch


@pytest.fixture
def shared_redis(settings, redis_url) -> Iterator[dict]:
    """Django's cache on the test Redis, under a key prefix of its own (runs can share Redis)."""
    import uuid

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": f"vo-test-{uuid.uuid4().hex[:12]}",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    state.forget()
    yield settings.CACHES["default"]
    state.forget()

"""Fixtures for the rate-limit tests: fresh caches and stores, rules, both counter stores."""

import socket
import time

import pytest

from notify import services as notify_services
from ratelimits import ruleset, services, store
from valhalla_ops.principals import SYSTEM


@pytest.fixture(autouse=True)
def _local_counters(settings):
    """Count in local memory unless a test asks for Redis (the root conftest empties both)."""
    settings.REDIS_URL = ""


@pytest.fixture(autouse=True)
def _steady_clock(request):
    """Stop the wall clock, so the requests of a test all fall in the same window.

    Windows are aligned to the epoch (with a per-counter offset): on a running clock, two
    requests a few milliseconds apart now and then straddle a boundary and the second one is
    counted afresh. Tests that move the clock do so with `time_machine` on top of this; tests
    that count in other processes are marked `real_clock`.
    """
    if request.node.get_closest_marker("real_clock"):
        yield
        return
    traveller = request.getfixturevalue("time_machine")
    traveller.move_to(time.time(), tick=False)
    yield


@pytest.fixture
def make_rule(db):
    """make(scope="ip", key="*", max_requests=1, ...) -> a saved rule, visible at once."""

    def make(**fields):
        rule = services.create_rule(actor=SYSTEM, **{"max_requests": 1, **fields})
        ruleset.invalidate()  # what the service's on_commit hook does
        return rule

    return make


@pytest.fixture
def use_redis(settings, redis_client, redis_url):
    """Count in the real Redis (flushed before and after)."""
    settings.REDIS_URL = redis_url
    settings.RATELIMIT_REDIS_TIMEOUT = 2  # a busy CI machine must not look like Redis down
    store.reset_store()
    return redis_client


@pytest.fixture(params=["local", "redis"])
def counter_store(request, settings) -> str:
    """Run the test once with the local-memory store and once with Redis."""
    if request.param == "redis":
        request.getfixturevalue("use_redis")
    return request.param


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def redis_down(settings, closed_port) -> None:
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port}/0"
    store.reset_store()


@pytest.fixture
def events(monkeypatch) -> list[dict]:
    """Every emit_event call, passed on to the real notify service."""
    calls: list[dict] = []
    real = notify_services.emit_event

    def spy(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(notify_services, "emit_event", spy)
    return calls

"""Real services for the tests: PostgreSQL, Redis, and free loopback ports for servers.

Outside CI a missing service skips the tests that need it, with the reason; in CI
(`CI=true`) it fails them, so a green run always means they ran.
"""

import os
import socket

import pytest
from django.db import connection

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
DEFAULT_TEST_REDIS = "redis://127.0.0.1:6379/15"


def free_ports(count: int) -> list[int]:
    """Distinct TCP ports on 127.0.0.1 that nothing listens on right now.

    The probes stay bound until all are chosen, so two calls cannot hand out the same port.
    """
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    return free_ports(1)[0]


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: required services must be running)")
    pytest.skip(reason)


@pytest.fixture
def postgres(db) -> None:
    """Skip (fail in CI's PostgreSQL pass) unless the tests run on PostgreSQL."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: runs in the pass with DATABASE_URL=postgres://...")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A reachable Redis URL, flushed per test that uses it.

    REDIS_URL when the project runs on Redis; otherwise TEST_REDIS_URL or the local default,
    so two suites on one machine can keep to their own Redis databases.
    """
    import redis

    url = os.environ.get("REDIS_URL") or os.environ.get("TEST_REDIS_URL") or DEFAULT_TEST_REDIS
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError as error:
        unavailable(f"Redis at {url} is not reachable: {error}")
    return url


@pytest.fixture
def redis_client(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def subscribe(db):
    """subscribe("client.*", ...) -> a function listing what a channel with those events got.

    The channel is a real one (email, never delivered here): what is listed is what the
    outbox queued for it, oldest first.
    """
    from notify import services as notify_services
    from notify.models import NotificationOutbox
    from valhalla_ops.principals import SYSTEM

    counter = iter(range(1, 10_000))

    def make(*patterns: str):
        channel, _secret = notify_services.create_channel(
            actor=SYSTEM,
            name=f"subscriber-{next(counter)}",
            channel_type="email",
            target="oncall@example.com",
            events=list(patterns),
        )
        return lambda: list(NotificationOutbox.objects.filter(channel=channel).order_by("id"))

    return make


def postgres_url() -> str:
    """This run's PostgreSQL test database as a URL, for the processes a test starts."""
    from urllib.parse import quote

    db = connection.settings_dict
    auth = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def database_url(tmp_path) -> str:
    """This run's test database for another process: PostgreSQL's, or a new SQLite file."""
    if connection.vendor != "postgresql":
        return f"sqlite:///{tmp_path / 'bench.sqlite3'}"
    return postgres_url()


def run_bench(script: str, *args: str) -> str:
    """Run a script of bench/ to its end; its output, or the test fails with it."""
    import subprocess
    import sys
    from pathlib import Path

    from django.conf import settings

    bench = Path(settings.BASE_DIR) / "bench"
    result = subprocess.run(
        [sys.executable, str(bench / script), *args],
        cwd=bench.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout

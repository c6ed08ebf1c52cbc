"""The cached reader the shield uses: local copy, shared cache (Redis), database, failure."""

import logging
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings as django_settings
from django.db import OperationalError
from django.utils import timezone

from maintenance import services, shared, state
from maintenance.models import MaintenanceState, MaintenanceWindow
from valhalla_ops.principals import SYSTEM
from valhalla_ops.tests.services import postgres_url

pytestmark = pytest.mark.django_db
logger = logging.getLogger(__name__)

ROOT = Path(django_settings.BASE_DIR)


def refuse_database():
    raise OperationalError("database is down")


def test_state_without_a_row_is_normal_and_creates_nothing():
    snapshot = state.current_state()

    assert snapshot.mode == "normal"
    assert snapshot.is_normal
    assert not MaintenanceState.objects.exists()


def test_warm_state_costs_no_query(set_maintenance_mode, django_assert_num_queries, settings):
    settings.MAINTENANCE_STATE_CACHE_SECONDS = 60  # the local copy must not lapse mid-test
    set_maintenance_mode("read_only")
    state.current_state()

    with django_assert_num_queries(0):
        mode = state.current_mode()

    assert mode == "read_only"


LOCAL_MEMORY = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


def test_without_a_shared_cache_the_local_copy_lives_at_most_the_ttl(settings, monkeypatch):
    # A clock of our own: a pause of the test process (GC, a busy CI machine) must not
    # count as time passing.
    clock = [1000.0]
    monkeypatch.setattr(state, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    settings.CACHES = LOCAL_MEMORY
    settings.MAINTENANCE_STATE_CACHE_SECONDS = 0.2
    assert state.current_mode() == "normal"
    MaintenanceState.objects.create(mode="maintenance")  # behind the services' back

    clock[0] += 0.19
    stale = state.current_mode()
    clock[0] += 0.02
    fresh = state.current_mode()

    assert (stale, fresh) == ("normal", "maintenance")


def test_snapshot_carries_the_windows_that_are_not_over():
    now = timezone.now()
    hour = timedelta(hours=1)
    running = MaintenanceWindow.objects.create(starts_at=now - hour, ends_at=now + hour)
    later = MaintenanceWindow.objects.create(starts_at=now + hour, ends_at=now + 2 * hour)
    MaintenanceWindow.objects.create(starts_at=now - 2 * hour, ends_at=now - hour)

    snapshot = state.current_state()

    assert [w.id for w in snapshot.windows] == [running.pk, later.pk]
    current, upcoming = snapshot.current_window(now), snapshot.next_window(now)
    assert current is not None
    assert current.id == running.pk
    assert upcoming is not None
    assert upcoming.id == later.pk


def test_unreadable_state_is_reported_not_guessed(monkeypatch):
    monkeypatch.setattr(state, "load_from_database", refuse_database)

    with pytest.raises(state.StateUnavailable):
        state.current_state()


@pytest.mark.redis
def test_shared_cache_serves_a_process_without_a_query(
    shared_redis, set_maintenance_mode, django_assert_num_queries
):
    set_maintenance_mode("maintenance", reason="upgrade")
    state.clear_local()  # another process: nothing local yet

    with django_assert_num_queries(0):
        snapshot = state.current_state()

    assert (snapshot.mode, snapshot.reason) == ("maintenance", "upgrade")


@pytest.mark.redis
def test_shared_cache_is_filled_from_the_database_once(shared_redis, django_assert_num_queries):
    MaintenanceState.objects.create(mode="read_only")
    with django_assert_num_queries(2):  # the row and the windows
        state.current_state()
    state.clear_local()

    with django_assert_num_queries(0):
        mode = state.current_mode()

    assert mode == "read_only"


@pytest.mark.redis
def test_entry_in_a_foreign_shape_is_rebuilt(shared_redis, redis_client):
    MaintenanceState.objects.create(mode="read_only", version=5)
    key = shared.state_key()
    redis_client.hset(key, mapping={"version": 1, "mode": "normal", "data": '{"unknown": 1}'})

    mode = state.current_mode()

    assert mode == "read_only"


def test_cache_down_falls_back_to_the_database(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    MaintenanceState.objects.create(mode="read_only")

    mode = state.current_mode()

    assert mode == "read_only"


def test_cache_and_database_down_is_unavailable(settings, monkeypatch):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    monkeypatch.setattr(state, "load_from_database", refuse_database)

    with pytest.raises(state.StateUnavailable):
        state.current_state()


READER = """
import time
from maintenance.state import current_mode
print("ready", current_mode(), flush=True)
deadline = time.monotonic() + 15
while time.monotonic() < deadline:
    mode = current_mode()
    if mode != "normal":
        print("seen", mode, repr(time.time()), flush=True)
        break
    time.sleep(0.005)
"""


def _start_reader(env: dict[str, str]) -> subprocess.Popen[str]:
    reader = subprocess.Popen(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", READER],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout is not None  # stdout=PIPE
    first = reader.stdout.readline().split()
    if first != ["ready", "normal"]:
        reader.kill()
        pytest.fail(f"the reader process did not start: {first}")
    return reader


@pytest.mark.parametrize("shared", ["redis", "no-redis"])
@pytest.mark.django_db(transaction=True)
def test_change_reaches_another_process_within_one_second(postgres, request, shared):
    env = {**os.environ, "DATABASE_URL": postgres_url(), "REDIS_URL": ""}
    if shared == "redis":
        cache = request.getfixturevalue("shared_redis")
        env |= {"REDIS_URL": cache["LOCATION"], "CACHE_KEY_PREFIX": cache["KEY_PREFIX"]}
    reader = _start_reader(env)
    assert reader.stdout is not None  # stdout=PIPE
    try:
        services.set_mode(actor=SYSTEM, mode="read_only", reason="cross-process")  # commits
        committed = time.time()  # the clock starts once the change is committed and pushed
        line = reader.stdout.readline().split()
        reader.wait(timeout=10)
    finally:
        reader.kill()

    assert line[:2] == ["seen", "read_only"]
    latency = float(line[2]) - committed
    logger.info("cross-process visibility (%s): %.0f ms", shared, latency * 1000)
    assert latency < 1.0

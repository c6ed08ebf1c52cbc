"""The publish/refresh race, made deterministic: a reader that read the row before a switch
was published must not put the older state back (in Redis or in its process)."""

import pytest

from maintenance import services, state
from maintenance.models import MaintenanceState
from valhalla_ops.principals import SYSTEM

pytestmark = pytest.mark.django_db


@pytest.fixture
def switch_while_reading(monkeypatch, set_maintenance_mode):
    """The next database read of the state returns what it read, but only after a switch to
    read_only has committed and been published in between (the reader was slow)."""
    original = state.load_from_database
    calls: list[str] = []

    def slow_reader():
        snapshot = original()  # the old row: normal
        if not calls:
            calls.append(snapshot.mode)
            monkeypatch.setattr(state, "load_from_database", original)
            set_maintenance_mode("read_only", reason="published meanwhile")
        return snapshot

    monkeypatch.setattr(state, "load_from_database", slow_reader)
    return calls


def test_a_slow_reader_does_not_bring_the_old_mode_back_in_its_process(
    settings, switch_while_reading
):
    settings.MAINTENANCE_STATE_CACHE_SECONDS = 60
    services.set_mode(actor=SYSTEM, mode="normal", reason="start")  # a row, in normal mode
    state.clear_local()

    state.current_state()  # misses, reads the old row, is overtaken by the publish

    assert switch_while_reading == ["normal"]
    assert state.current_mode() == "read_only"


@pytest.mark.redis
def test_a_slow_reader_does_not_overwrite_a_newer_state_in_redis(
    shared_redis, settings, switch_while_reading
):
    settings.MAINTENANCE_STATE_CACHE_SECONDS = 60
    services.set_mode(actor=SYSTEM, mode="normal", reason="start")
    state.forget()  # Redis has no entry: the reader will refill it from the database

    state.current_state()
    state.clear_local()  # another process, reading Redis afterwards

    assert switch_while_reading == ["normal"]
    assert state.current_mode() == "read_only"


@pytest.mark.redis
def test_an_older_publish_never_replaces_a_newer_one(shared_redis, set_maintenance_mode):
    set_maintenance_mode("read_only", reason="first")
    older = state.load_from_database()
    set_maintenance_mode("maintenance", reason="second")

    from maintenance import shared

    stored = shared.store(older.version, older.mode, older.as_json())
    state.clear_local()

    assert stored is False
    assert state.current_mode() == "maintenance"


def test_versions_only_grow():
    first = services.set_mode(actor=SYSTEM, mode="read_only").version
    MaintenanceState.objects.update(version=first + 10**12)  # a clock ahead, or a restore
    second = services.set_mode(actor=SYSTEM, mode="normal").version

    assert second > first + 10**12

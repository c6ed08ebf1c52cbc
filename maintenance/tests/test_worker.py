"""Maintenance windows switch the mode at their start and back at their end, exactly once."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command

from maintenance import services, worker
from maintenance.models import MaintenanceState, MaintenanceWindow
from valhalla_ops.models import SystemLog
from valhalla_ops.principals import SYSTEM

pytestmark = pytest.mark.django_db

TEN = datetime(2030, 5, 1, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def clock(time_machine, settings):
    settings.MAINTENANCE_ALERT_AFTER = 0  # the alert tests turn it on

    def at(moment: datetime) -> None:
        time_machine.move_to(moment, tick=False)

    at(TEN - timedelta(minutes=5))
    return at


def make_window(start: datetime, end: datetime, **fields) -> MaintenanceWindow:
    return services.create_window(actor=SYSTEM, starts_at=start, ends_at=end, **fields)


def mode() -> str:
    return services.read_state().mode


def mode_changes() -> list[SystemLog]:
    return list(SystemLog.objects.filter(action="maintenance.set_mode").order_by("id"))


def test_window_switches_the_mode_at_its_start_and_back_at_its_end(clock):
    window = make_window(TEN, TEN + 2 * HOUR, description="upgrade")

    before = worker.run_windows()
    clock(TEN)
    started = worker.run_windows()
    again = worker.run_windows()
    during = mode()
    clock(TEN + 2 * HOUR)
    ended = worker.run_windows()
    after = worker.run_windows()

    assert (before, started, again, ended, after) == (0, 1, 0, 1, 0)
    assert (during, mode()) == ("maintenance", "normal")
    window.refresh_from_db()
    assert (window.started_at, window.ended_at) == (TEN, TEN + 2 * HOUR)
    start_log, end_log = mode_changes()
    assert (start_log.actor, start_log.actor_type) == ("system", "system")
    assert start_log.context["event"] == "window_start"
    assert start_log.after == {
        "mode": "maintenance",
        "reason": f"Maintenance window #{window.pk}: upgrade",
        "changed_by": "system",
        "window_id": window.pk,
    }
    assert end_log.context["event"] == "window_end"
    assert end_log.after is not None
    assert end_log.after["mode"] == "normal"


def test_read_only_window(clock):
    make_window(TEN, TEN + HOUR, mode="read_only")

    clock(TEN + timedelta(minutes=1))
    worker.run_windows()

    assert mode() == "read_only"


def test_inactive_window_does_nothing(clock):
    make_window(TEN, TEN + HOUR, active=False)

    clock(TEN)
    handled = worker.run_windows()

    assert handled == 0
    assert MaintenanceState.objects.get().mode == "normal"


def test_a_window_missed_entirely_is_not_started(clock):
    window = make_window(TEN, TEN + HOUR)

    clock(TEN + 2 * HOUR)
    handled = worker.run_windows()

    assert handled == 0
    window.refresh_from_db()
    assert window.started_at is None
    assert MaintenanceState.objects.get().mode == "normal"


def test_end_leaves_a_mode_someone_else_set(clock):
    window = make_window(TEN, TEN + HOUR)
    clock(TEN)
    worker.run_windows()
    services.set_mode(actor=SYSTEM, mode="read_only", reason="keep it safe")

    clock(TEN + HOUR)
    handled = worker.run_windows()

    assert handled == 1
    assert mode() == "read_only"
    window.refresh_from_db()
    assert window.ended_at == TEN + HOUR
    assert SystemLog.objects.filter(action="maintenance.window_end").count() == 1


def test_window_never_weakens_the_mode_in_force(clock):
    services.set_mode(actor=SYSTEM, mode="maintenance", reason="manual")
    make_window(TEN, TEN + HOUR, mode="read_only")

    clock(TEN)
    handled = worker.run_windows()
    clock(TEN + HOUR)
    worker.run_windows()

    assert handled == 1
    assert mode() == "maintenance"
    assert services.read_state().reason == "manual"
    assert SystemLog.objects.filter(action="maintenance.window_start").count() == 1


def test_window_deactivated_while_running_ends_at_once(clock, ops_admin):
    window = make_window(TEN, TEN + 2 * HOUR)
    clock(TEN)
    worker.run_windows()

    clock(TEN + HOUR)
    ops_admin.patch(f"/system/maintenance/windows/{window.pk}", {"active": False}, format="json")
    handled = worker.run_windows()

    assert handled == 1
    assert mode() == "normal"


def test_overlapping_windows_hand_over(clock):
    first = make_window(TEN, TEN + 2 * HOUR, mode="maintenance")
    second = make_window(TEN + HOUR, TEN + 3 * HOUR, mode="read_only")
    modes = []

    for hours in range(4):
        clock(TEN + hours * HOUR)
        worker.run_windows()
        modes.append(mode())

    assert modes == ["maintenance", "maintenance", "read_only", "normal"]
    assert services.read_state().window_id is None
    afters = [log.after for log in mode_changes()]
    assert None not in afters
    window_ids = [after["window_id"] for after in afters if after is not None]
    assert window_ids == [first.pk, second.pk, None]


@pytest.mark.django_db(transaction=True)  # run_worker closes connections left in a transaction
def test_worker_command_runs_the_step(clock):
    make_window(TEN, TEN + HOUR)
    clock(TEN)

    call_command("run_worker", "--once", "--only", "maintenance_windows")

    assert mode() == "maintenance"


def test_long_non_normal_mode_raises_one_alert(clock, settings, monkeypatch):
    settings.MAINTENANCE_ALERT_AFTER = 1800
    events: list[dict[str, Any]] = []

    def emit_event(**kwargs: Any) -> list[Any]:
        events.append(kwargs)
        return []

    monkeypatch.setattr(worker, "emit_event", emit_event)
    clock(TEN)
    services.set_mode(actor=SYSTEM, mode="maintenance", reason="long job")

    clock(TEN + timedelta(minutes=29))
    early = worker.run_windows()
    clock(TEN + timedelta(minutes=31))
    alerted = worker.run_windows()
    again = worker.run_windows()

    assert (early, alerted, again) == (0, 1, 0)
    assert [e["topic"] for e in events] == ["maintenance.mode_stuck"]
    state = MaintenanceState.objects.get()
    assert state.alerted_at == TEN + timedelta(minutes=31)
    assert state.updated_at == TEN  # the alert does not move "since" or "updated"
    assert SystemLog.objects.filter(action="maintenance.mode_alert").count() == 1


def test_alert_can_be_turned_off(clock, settings):
    settings.MAINTENANCE_ALERT_AFTER = 0
    clock(TEN)
    services.set_mode(actor=SYSTEM, mode="maintenance")

    clock(TEN + timedelta(days=1))

    assert worker.run_windows() == 0

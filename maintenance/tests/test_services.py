from datetime import timedelta

import pytest
from django.utils import timezone

from maintenance import services, state
from maintenance.models import MaintenanceState, MaintenanceWindow
from notify.models import NotificationOutbox
from notify.services import create_channel
from valhalla_ops.exceptions import ServiceError
from valhalla_ops.models import SystemLog
from valhalla_ops.principals import SYSTEM

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)


@pytest.fixture
def events(monkeypatch):
    """Records the events set_mode emits (and still emits them)."""
    seen = []
    real = services.emit_event

    def spy(**kwargs):
        seen.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(services, "emit_event", spy)
    return seen


def test_read_state_without_a_row_is_normal_and_creates_nothing():
    result = services.read_state()

    assert result.mode == "normal"
    assert result.updated_at is None
    assert not MaintenanceState.objects.exists()


def test_set_mode_stores_the_state_with_one_audit_row(staff_user, events):
    result = services.set_mode(actor=staff_user, mode="read_only", reason="EMERGENCY")

    result.refresh_from_db()
    assert (result.mode, result.reason, result.changed_by) == ("read_only", "EMERGENCY", "staff")
    assert result.since is not None
    log = SystemLog.objects.get(action="maintenance.set_mode")
    assert log.before is not None
    assert log.before["mode"] == "normal"
    assert log.after == {
        "mode": "read_only",
        "reason": "EMERGENCY",
        "changed_by": "staff",
        "window_id": None,
    }
    assert log.actor == "staff"
    assert log.target_type == "maintenance.maintenancestate"
    assert [e["topic"] for e in events] == ["maintenance.mode_changed"]
    assert events[0]["payload"]["previous_mode"] == "normal"


def test_set_mode_refuses_an_unknown_mode():
    with pytest.raises(ServiceError) as error:
        services.set_mode(actor=SYSTEM, mode="panic")

    assert "normal, read_only, maintenance" in str(error.value.detail)
    assert not MaintenanceState.objects.exists()
    assert not SystemLog.objects.exists()


def test_same_mode_again_is_audited_but_not_announced_and_keeps_since(events):
    first = services.set_mode(actor=SYSTEM, mode="maintenance", reason="start")
    since = first.since

    second = services.set_mode(actor=SYSTEM, mode="maintenance", reason="still going")

    second.refresh_from_db()
    assert second.since == since
    assert second.reason == "still going"
    assert SystemLog.objects.filter(action="maintenance.set_mode").count() == 2
    assert len(events) == 1


def test_set_mode_publishes_on_commit(
    django_capture_on_commit_callbacks, django_assert_num_queries, settings
):
    settings.MAINTENANCE_STATE_CACHE_SECONDS = 60  # only the publish may refresh the copy
    assert state.current_mode() == "normal"

    with django_capture_on_commit_callbacks(execute=True):
        services.set_mode(actor=SYSTEM, mode="read_only", reason="x")

    with django_assert_num_queries(0):
        assert state.current_mode() == "read_only"


def test_set_mode_without_commit_leaves_the_cached_state_alone(settings):
    settings.MAINTENANCE_STATE_CACHE_SECONDS = 60  # a lapsed copy would re-read the open row
    assert state.current_mode() == "normal"

    services.set_mode(actor=SYSTEM, mode="read_only")  # the test transaction never commits

    assert state.current_mode() == "normal"


def test_create_window_is_audited(staff_user):
    start = timezone.now() + HOUR

    window = services.create_window(
        actor=staff_user, starts_at=start, ends_at=start + HOUR, description="DB upgrade"
    )

    window.refresh_from_db()
    assert (window.mode, window.active, window.description) == ("maintenance", True, "DB upgrade")
    log = SystemLog.objects.get(action="maintenance.create_window")
    assert log.target_id == str(window.pk)
    assert log.after is not None
    assert log.after["description"] == "DB upgrade"


def test_create_window_refuses_an_end_before_the_start():
    start = timezone.now()

    with pytest.raises(ServiceError) as error:
        services.create_window(actor=SYSTEM, starts_at=start, ends_at=start)

    assert error.value.detail == {"ends_at": ["ends_at must be after starts_at."]}
    assert not MaintenanceWindow.objects.exists()


def test_update_window_is_audited_with_before_and_after(staff_user):
    start = timezone.now() + HOUR
    window = services.create_window(actor=SYSTEM, starts_at=start, ends_at=start + HOUR)

    services.update_window(actor=staff_user, window=window, active=False)

    window.refresh_from_db()
    assert window.active is False
    log = SystemLog.objects.get(action="maintenance.update_window")
    assert log.before is not None
    assert log.after is not None
    assert (log.before["active"], log.after["active"]) == (True, False)


def test_update_window_checks_the_resulting_span():
    start = timezone.now() + HOUR
    window = services.create_window(actor=SYSTEM, starts_at=start, ends_at=start + HOUR)

    with pytest.raises(ServiceError):
        services.update_window(actor=SYSTEM, window=window, starts_at=start + 2 * HOUR)

    window.refresh_from_db()
    assert window.starts_at == start


def test_started_window_keeps_its_start_and_mode_but_may_be_extended():
    now = timezone.now()
    window = services.create_window(actor=SYSTEM, starts_at=now - HOUR, ends_at=now + HOUR)
    MaintenanceWindow.objects.filter(pk=window.pk).update(started_at=now)

    with pytest.raises(ServiceError):
        services.update_window(actor=SYSTEM, window=window, mode="read_only")
    services.update_window(actor=SYSTEM, window=window, ends_at=now + 2 * HOUR)

    window.refresh_from_db()
    assert (window.mode, window.ends_at) == ("maintenance", now + 2 * HOUR)


def test_ended_window_only_takes_a_description_or_active_flag():
    now = timezone.now()
    window = services.create_window(actor=SYSTEM, starts_at=now - 2 * HOUR, ends_at=now - HOUR)
    MaintenanceWindow.objects.filter(pk=window.pk).update(started_at=now, ended_at=now)

    with pytest.raises(ServiceError):
        services.update_window(actor=SYSTEM, window=window, ends_at=now + HOUR)
    services.update_window(actor=SYSTEM, window=window, description="done early")

    window.refresh_from_db()
    assert window.description == "done early"
    assert window.ends_at == now - HOUR


def test_update_window_refuses_unknown_fields():
    start = timezone.now() + HOUR
    window = services.create_window(actor=SYSTEM, starts_at=start, ends_at=start + HOUR)

    with pytest.raises(ServiceError):
        services.update_window(actor=SYSTEM, window=window, started_at=start)

    window.refresh_from_db()
    assert window.started_at is None


def test_mode_change_queues_an_alert_for_subscribed_channels():
    create_channel(
        actor=SYSTEM,
        name="oncall",
        channel_type="email",
        target="oncall@example.com",
        events=["maintenance.*"],
    )

    services.set_mode(actor=SYSTEM, mode="maintenance", reason="upgrade")

    row = NotificationOutbox.objects.get(topic="maintenance.mode_changed")
    assert row.payload["mode"] == "maintenance"
    assert row.payload["previous_mode"] == "normal"

"""The seeds' maintenance endpoints: every path, with and without trailing slash."""

from datetime import UTC, datetime, timedelta

import pytest

from maintenance.models import MaintenanceState, MaintenanceWindow
from valhalla_ops.models import SystemLog

pytestmark = pytest.mark.django_db

STATE = "/system/maintenance/state"
WINDOWS = "/system/maintenance/windows"
START = datetime(2030, 1, 1, 2, 0, tzinfo=UTC)


def window_body(**overrides) -> dict:
    body = {
        "starts_at": START.isoformat(),
        "ends_at": (START + timedelta(hours=2)).isoformat(),
        "description": "Database upgrade",
    }
    return body | overrides


@pytest.fixture
def window(ops_admin) -> MaintenanceWindow:
    response = ops_admin.post(WINDOWS, window_body(), format="json")
    return MaintenanceWindow.objects.get(pk=response.json()["id"])


# --- state --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [STATE, STATE + "/"])
def test_get_state_without_a_row_is_normal_and_creates_nothing(viewer, path):
    response = viewer.get(path)

    assert response.status_code == 200
    body = response.json()
    assert (body["mode"], body["reason"], body["updated_at"]) == ("normal", "", None)
    assert not MaintenanceState.objects.exists()


@pytest.mark.parametrize("path", [STATE, STATE + "/"])
def test_post_state_as_in_the_seed(ops_admin, path):
    response = ops_admin.post(
        path, {"mode": "read_only", "reason": "Scheduled maintenance"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["mode"] == "read_only"
    assert response.json()["reason"] == "Scheduled maintenance"
    stored = MaintenanceState.objects.get()
    assert (stored.mode, stored.changed_by) == ("read_only", "client:ops-admin-caller")
    log = SystemLog.objects.get(action="maintenance.set_mode")
    assert log.actor_type == "client"
    assert log.before is not None
    assert log.after is not None
    assert (log.before["mode"], log.after["mode"]) == ("normal", "read_only")


def test_get_state_shows_the_stored_mode(viewer, ops_admin):
    ops_admin.post(STATE, {"mode": "maintenance", "reason": "upgrade"}, format="json")

    body = viewer.get(STATE).json()

    assert (body["mode"], body["reason"]) == ("maintenance", "upgrade")
    assert body["updated_at"] is not None


@pytest.mark.parametrize("path", ["/read_only", "/read_only/"])
def test_shortcut_as_in_the_seed(ops_admin, path):
    response = ops_admin.post(f"{STATE}{path}?reason=EMERGENCY")

    assert response.status_code == 200
    assert response.json()["mode"] == "read_only"
    assert MaintenanceState.objects.get().reason == "EMERGENCY"
    assert SystemLog.objects.filter(action="maintenance.set_mode").count() == 1


def test_shortcut_back_to_normal_without_reason(ops_admin):
    ops_admin.post(f"{STATE}/read_only?reason=EMERGENCY")

    response = ops_admin.post(f"{STATE}/normal")

    assert response.json()["mode"] == "normal"
    assert MaintenanceState.objects.get().reason == ""


def test_shortcut_with_a_bad_mode_lists_the_valid_ones(ops_admin):
    response = ops_admin.post(f"{STATE}/panic")

    assert response.status_code == 400
    assert response.json()["errors"]["mode"] == [
        'Unknown mode "panic". Valid modes: normal, read_only, maintenance.'
    ]
    assert not MaintenanceState.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reason": "x"}, "mode"),
        ({"mode": "off"}, "mode"),
        ({"mode": "normal", "reason": "x" * 1001}, "reason"),
    ],
)
def test_post_state_validates(ops_admin, body, field):
    response = ops_admin.post(STATE, body, format="json")

    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not SystemLog.objects.filter(category="maintenance").exists()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", STATE),
        ("post", STATE),
        ("post", STATE + "/normal"),
        ("get", WINDOWS),
        ("post", WINDOWS),
    ],
)
def test_anonymous_gets_401(api_client, method, path):
    response = getattr(api_client, method)(path, {}, format="json")

    assert response.status_code == 401


@pytest.mark.parametrize("caller", ["viewer", "operator"])
def test_only_ops_admin_changes_the_state(request, caller):
    client = request.getfixturevalue(caller)

    posted = client.post(STATE, {"mode": "read_only"}, format="json")
    shortcut = client.post(STATE + "/read_only")

    assert (posted.status_code, shortcut.status_code) == (403, 403)
    assert not MaintenanceState.objects.exists()


def test_caller_without_group_cannot_read(nobody):
    assert nobody.get(STATE).status_code == 403
    assert nobody.get(WINDOWS).status_code == 403


# --- windows ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [WINDOWS, WINDOWS + "/"])
def test_create_window(ops_admin, path):
    response = ops_admin.post(path, window_body(), format="json")

    assert response.status_code == 201
    body = response.json()
    assert (body["active"], body["mode"], body["started_at"]) == (True, "maintenance", None)
    stored = MaintenanceWindow.objects.get(pk=body["id"])
    assert stored.starts_at == START
    assert SystemLog.objects.filter(action="maintenance.create_window").count() == 1


def test_create_read_only_window(ops_admin):
    response = ops_admin.post(WINDOWS, window_body(mode="read_only"), format="json")

    assert response.json()["mode"] == "read_only"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"ends_at": START.isoformat()}, "ends_at"),
        ({"ends_at": (START - timedelta(minutes=1)).isoformat()}, "ends_at"),
        ({"starts_at": "tomorrow"}, "starts_at"),
        ({"mode": "normal"}, "mode"),
        ({"active": "perhaps"}, "active"),
    ],
)
def test_create_window_validates(ops_admin, overrides, field):
    response = ops_admin.post(WINDOWS, window_body(**overrides), format="json")

    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not MaintenanceWindow.objects.exists()


def test_create_window_needs_both_dates(ops_admin):
    response = ops_admin.post(WINDOWS, {"description": "x"}, format="json")

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"starts_at", "ends_at"}


def test_list_and_filter_windows(viewer, window, ops_admin):
    ops_admin.patch(f"{WINDOWS}/{window.pk}", {"active": False}, format="json")
    ops_admin.post(
        WINDOWS,
        window_body(starts_at="2030-02-01T00:00:00Z", ends_at="2030-02-01T01:00:00Z"),
        format="json",
    )

    everything = viewer.get(WINDOWS).json()
    active = viewer.get(WINDOWS, {"active": "true"}).json()
    later = viewer.get(WINDOWS, {"starts_after": "2030-01-15T00:00:00Z"}).json()

    assert everything["count"] == 2
    assert everything["results"][0]["starts_at"].startswith("2030-02-01")  # newest first
    assert active["count"] == 1
    assert later["count"] == 1


@pytest.mark.parametrize("suffix", ["", "/"])
def test_get_window(viewer, window, suffix):
    response = viewer.get(f"{WINDOWS}/{window.pk}{suffix}")

    assert response.status_code == 200
    assert response.json()["description"] == "Database upgrade"


@pytest.mark.parametrize("method", ["get", "patch"])
@pytest.mark.parametrize("pk", ["999999", "abc"])
def test_unknown_window_is_404(ops_admin, method, pk):
    response = getattr(ops_admin, method)(f"{WINDOWS}/{pk}", {"active": False}, format="json")

    assert response.status_code == 404


def test_patch_window_as_in_the_seed(ops_admin, window):
    response = ops_admin.patch(f"{WINDOWS}/{window.pk}", {"active": False}, format="json")

    assert response.status_code == 200
    assert response.json()["active"] is False
    window.refresh_from_db()
    assert window.active is False
    log = SystemLog.objects.get(action="maintenance.update_window")
    assert log.before is not None
    assert log.after is not None
    assert (log.before["active"], log.after["active"]) == (True, False)


def test_patch_window_with_an_end_before_its_start_is_400(ops_admin, window):
    response = ops_admin.patch(
        f"{WINDOWS}/{window.pk}",
        {"ends_at": (START - timedelta(hours=1)).isoformat()},
        format="json",
    )

    assert response.status_code == 400
    assert "ends_at" in response.json()["errors"]
    window.refresh_from_db()
    assert window.ends_at == START + timedelta(hours=2)


def test_put_and_delete_are_not_offered(ops_admin, window):
    put = ops_admin.put(f"{WINDOWS}/{window.pk}", window_body(), format="json")
    delete = ops_admin.delete(f"{WINDOWS}/{window.pk}")

    assert (put.status_code, delete.status_code) == (405, 405)
    assert MaintenanceWindow.objects.filter(pk=window.pk).exists()


@pytest.mark.parametrize("caller", ["viewer", "operator"])
def test_windows_are_changed_by_ops_admin_only(request, caller, window):
    client = request.getfixturevalue(caller)

    created = client.post(WINDOWS, window_body(), format="json")
    patched = client.patch(f"{WINDOWS}/{window.pk}", {"active": False}, format="json")

    assert (created.status_code, patched.status_code) == (403, 403)
    window.refresh_from_db()
    assert window.active is True

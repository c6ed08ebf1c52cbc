import pytest

from valhalla_ops import registry
from valhalla_ops.models import SystemLog
from valhalla_ops.ops import OpsAction

pytestmark = pytest.mark.django_db


def test_security_snapshot_collects_every_section(ops_admin):
    response = ops_admin.post("/admin/ops/", {"action": "security_snapshot"}, format="json")

    body = response.json()
    assert response.status_code == 200
    assert body["ok"] is True
    assert body["action"] == "security_snapshot"
    assert body["error"] is None
    assert body["data"]["clients"]["active"] >= 1
    assert SystemLog.objects.filter(action="admin_ops.security_snapshot").count() == 1


def test_list_actions_without_trailing_slash(ops_admin):
    response = ops_admin.post("/admin/ops", {"action": "list_actions", "params": {}}, format="json")

    names = {row["action"] for row in response.json()["data"]}
    assert response.status_code == 200
    assert {"list_actions", "security_snapshot"} <= names


def test_unknown_action_is_a_400_with_ok_false(ops_admin):
    response = ops_admin.post("/admin/ops/", {"action": "launch_missiles"}, format="json")

    assert response.status_code == 400
    assert response.json()["ok"] is False
    assert "launch_missiles" in response.json()["error"]


def test_missing_action_is_a_400_in_the_ops_shape(ops_admin):
    response = ops_admin.post("/admin/ops/", {"params": {}}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "ok": False,
        "action": None,
        "data": None,
        "error": "action: This field is required.",
    }


def test_a_broken_section_does_not_hide_the_others(ops_admin, monkeypatch):
    def broken() -> dict:
        raise RuntimeError("down")

    monkeypatch.setitem(registry.snapshot_sections._entries, "broken", broken)

    data = ops_admin.post("/admin/ops/", {"action": "security_snapshot"}, format="json").json()[
        "data"
    ]

    assert data["broken"] == {"error": "section unavailable"}
    assert "clients" in data


def test_action_errors_come_back_as_ok_false(ops_admin, monkeypatch):
    from valhalla_ops.exceptions import ServiceError

    def refuse(*, actor, params):
        raise ServiceError("mode must be one of normal, read_only", field="mode")

    monkeypatch.setitem(
        registry.ops_actions._entries, "refuser", OpsAction(refuse, "test", mutating=True)
    )

    response = ops_admin.post(
        "/admin/ops/", {"action": "refuser", "params": {"mode": "x"}}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {
        "ok": False,
        "action": "refuser",
        "data": None,
        "error": "mode: mode must be one of normal, read_only",
    }


def test_admin_ops_needs_credentials_and_the_ops_admin_role_for_admin_actions(api_client, operator):
    anonymous = api_client.post("/admin/ops/", {"action": "list_actions"}, format="json")
    refused = operator.post("/admin/ops/", {"action": "security_snapshot"}, format="json")

    assert anonymous.status_code == 401
    assert anonymous.json() == {
        "ok": False,
        "action": "list_actions",
        "data": None,
        "error": "Authentication credentials were not provided.",
    }
    assert refused.status_code == 403
    assert refused.json() == {
        "ok": False,
        "action": "security_snapshot",
        "data": None,
        "error": "The action 'security_snapshot' needs the permission valhalla_ops.run_admin_ops.",
    }


# --- every execution is announced: an event for subscribed channels, and a metric ----------


@pytest.fixture
def ops_inbox(subscribe):
    return subscribe("admin_ops.*")


def ops_count(action: str, outcome: str) -> float:
    from valhalla_ops.metrics import registry as metrics_registry

    value = metrics_registry.get_sample_value(
        "valhalla_admin_ops_total", {"action": action, "outcome": outcome}
    )
    return value or 0.0


def test_a_read_only_action_raises_admin_ops_executed(ops_admin, ops_inbox):
    before = ops_count("security_snapshot", "ok")

    ops_admin.post("/admin/ops/", {"action": "security_snapshot"}, format="json")

    [event] = ops_inbox()
    assert event.topic == "admin_ops.executed"
    assert event.payload["action"] == "security_snapshot"
    assert event.payload["outcome"] == "ok"
    assert event.payload["mutating"] is False
    assert event.payload["actor"] == "client:ops-admin-caller"
    assert "security_snapshot" in event.subject
    assert ops_count("security_snapshot", "ok") == before + 1


def test_a_mutating_action_raises_the_event_with_its_change(ops_admin, ops_inbox):
    response = ops_admin.post(
        "/admin/ops/",
        {"action": "set_maintenance_mode", "params": {"mode": "read_only", "reason": "drill"}},
        format="json",
    )

    assert response.json()["ok"] is True
    topics = [event.topic for event in ops_inbox()]
    assert topics == ["admin_ops.executed"]
    [event] = ops_inbox()
    assert event.payload["mutating"] is True
    assert event.payload["params"] == {"mode": "read_only", "reason": "drill"}


def test_a_refused_action_is_announced_and_counted(ops_admin, ops_inbox, monkeypatch):
    from valhalla_ops.exceptions import ServiceError

    def refuse(*, actor, params):
        raise ServiceError("not today", field="mode")

    monkeypatch.setitem(
        registry.ops_actions._entries, "refuser", OpsAction(refuse, "test", mutating=True)
    )
    before = ops_count("refuser", "refused")

    response = ops_admin.post(
        "/admin/ops/", {"action": "refuser", "params": {"token": "s3cret"}}, format="json"
    )

    assert response.status_code == 400
    [event] = ops_inbox()
    assert event.topic == "admin_ops.refused"
    assert event.payload["error"] == "mode: not today"
    assert event.payload["params"] == {"token": "[redacted]"}
    assert "s3cret" not in event.body
    assert ops_count("refuser", "refused") == before + 1


def test_an_unknown_action_is_counted_without_its_name(ops_admin):
    before = ops_count("unknown", "refused")

    ops_admin.post("/admin/ops/", {"action": "launch_missiles"}, format="json")

    assert ops_count("unknown", "refused") == before + 1
    assert ops_count("launch_missiles", "refused") == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/system/maintenance/state/normal"),
        ("put", "/system/maintenance/state"),
        ("delete", "/system/maintenance/state"),
    ],
)
def test_a_method_a_view_does_not_answer_is_a_405_for_a_permitted_caller(
    ops_admin, api_client, method, path
):
    allowed = getattr(ops_admin, method)(path)
    anonymous = getattr(api_client, method)(path)

    assert allowed.status_code == 405
    assert allowed.json()["status_code"] == 405
    assert method.upper() in allowed.json()["detail"]
    assert anonymous.status_code == 401  # who you are is still asked first


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_a_method_admin_ops_does_not_answer_is_a_405_in_the_ops_shape(ops_admin, method):
    response = getattr(ops_admin, method)("/admin/ops/")

    assert response.status_code == 405
    assert response.json() == {
        "ok": False,
        "action": None,
        "data": None,
        "error": f'Method "{method.upper()}" not allowed.',
    }


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        (b"{not json", "application/json", "JSON parse error"),
        (b"[1, 2]", "application/json", "Invalid data. Expected a dictionary, but got list."),
        (b'{"action": ["x"]}', "application/json", "action: Not a valid string."),
        (b'{"action": "list_actions", "params": []}', "application/json", "params: Expected"),
        (b"action=list_actions", "text/plain", "Unsupported media type"),
    ],
)
def test_every_bad_body_is_answered_in_the_ops_shape(ops_admin, body, content_type, error):
    response = ops_admin.generic("POST", "/admin/ops/", body, content_type=content_type)

    payload = response.json()
    assert 400 <= response.status_code < 500
    assert set(payload) == {"ok", "action", "data", "error"}
    assert payload["ok"] is False
    assert payload["data"] is None
    assert error in payload["error"]


# --- per-action permissions -------------------------------------------------------------

READ_ACTIONS = ["list_actions", "get_maintenance_state", "dashboard", "retention_preview"]


@pytest.mark.parametrize("action", READ_ACTIONS)
def test_a_viewer_runs_the_read_actions(viewer, action):
    response = viewer.post("/admin/ops/", {"action": action}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["ok"] is True
    assert SystemLog.objects.filter(action=f"admin_ops.{action}").count() == 1


@pytest.mark.parametrize(
    "action",
    [
        "security_snapshot",
        "set_maintenance_mode",
        "snapshot_ratelimits",
        "retry_failed_notifications",
    ],
)
def test_a_viewer_is_refused_the_other_actions_with_a_403(viewer, action, ops_inbox):
    response = viewer.post("/admin/ops/", {"action": action, "params": {}}, format="json")

    assert response.status_code == 403
    body = response.json()
    assert body["ok"] is False
    assert body["action"] == action
    assert body["data"] is None
    assert "needs the permission" in body["error"]
    assert [event.topic for event in ops_inbox()] == ["admin_ops.refused"]


def test_nobody_in_no_group_may_run_even_list_actions(nobody):
    response = nobody.post("/admin/ops/", {"action": "list_actions"}, format="json")

    assert response.status_code == 403
    assert response.json()["action"] == "list_actions"


def test_list_actions_returns_only_what_the_caller_may_run(viewer, ops_admin):
    def names(caller) -> set[str]:
        body = caller.post("/admin/ops/", {"action": "list_actions"}, format="json").json()
        return {row["action"] for row in body["data"]}

    assert names(viewer) == set(READ_ACTIONS)
    assert set(READ_ACTIONS) | {"security_snapshot", "set_maintenance_mode"} <= names(ops_admin)
    assert set(registry.ops_actions.names()) == names(ops_admin)


def test_list_actions_describes_the_typed_params(ops_admin):
    body = ops_admin.post("/admin/ops/", {"action": "list_actions"}, format="json").json()

    rows = {row["action"]: row for row in body["data"]}
    retry = rows["retry_failed_notifications"]
    assert retry["mutating"] is True
    assert retry["params"]["failed_within_hours"] == {
        "type": "integer",
        "required": False,
        "help": "Only notifications that failed in the last N hours.",
    }
    assert retry["permissions"] == [
        "valhalla_ops.run_admin_ops",
        "notify.change_notificationoutbox",
    ]


def test_an_action_registered_without_a_permission_still_needs_run_admin_ops(
    viewer, ops_admin, monkeypatch
):
    monkeypatch.setitem(
        registry.ops_actions._entries,
        "legacy",
        OpsAction(lambda *, actor, params: "done", "registered elsewhere"),
    )

    assert viewer.post("/admin/ops/", {"action": "legacy"}, format="json").status_code == 403
    assert ops_admin.post("/admin/ops/", {"action": "legacy"}, format="json").json()["data"] == (
        "done"
    )


def test_typed_params_are_validated_before_the_action_runs(ops_admin):
    response = ops_admin.post(
        "/admin/ops/",
        {"action": "retry_failed_notifications", "params": {"failed_within_hours": "soon"}},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["error"] == "failed_within_hours: A valid integer is required."


# --- dashboard ----------------------------------------------------------------------------


def test_dashboard_gives_the_admin_index_boxes_as_json(viewer, staff_user, client):
    from valhalla_ops.dashboard import sections

    response = viewer.post("/admin/ops/", {"action": "dashboard"}, format="json")

    data = response.json()["data"]
    boxes = sections()
    assert list(data) == [box["name"] for box in boxes]
    for box in boxes:
        assert data[box["name"]]["title"] == box["title"]
        assert [row["label"] for row in data[box["name"]]["rows"]] == [r[0] for r in box["rows"]]
    assert data["maintenance"]["rows"][0] == {"label": "mode", "value": "normal", "level": "ok"}
    client.force_login(staff_user)
    index = client.get("/admin/").content.decode()
    for box in boxes:
        assert f'data-section="{box["name"]}"' in index


def test_dashboard_counts_follow_the_data(viewer, make_api_client):
    def clients_box() -> dict:
        data = viewer.post("/admin/ops/", {"action": "dashboard"}, format="json").json()["data"]
        return {row["label"]: row["value"] for row in data["clients"]["rows"]}

    make_api_client(name="one-more")
    first = clients_box()["active clients"]
    make_api_client(name="two-more")

    active, total = (int(n) for n in first.split(" of "))
    assert clients_box()["active clients"] == f"{active + 1} of {total + 1}"


def test_a_broken_dashboard_section_shows_as_unavailable(viewer, monkeypatch):
    def broken() -> list:
        raise RuntimeError("down")

    monkeypatch.setitem(
        registry.dashboard_sections._entries,
        "broken",
        registry.DashboardSection("Broken", broken, order=1),
    )

    data = viewer.post("/admin/ops/", {"action": "dashboard"}, format="json").json()["data"]

    assert data["broken"]["rows"] == [{"label": "status", "value": "unavailable", "level": "error"}]


def test_an_action_that_crashes_is_a_500_in_the_ops_shape(ops_admin, monkeypatch, caplog):
    def crash(*, actor, params):
        raise RuntimeError("boom")

    monkeypatch.setitem(registry.ops_actions._entries, "crasher", OpsAction(crash, "test"))
    before = ops_count("crasher", "error")

    response = ops_admin.post("/admin/ops/", {"action": "crasher"}, format="json")

    assert response.status_code == 500
    assert response.json() == {
        "ok": False,
        "action": "crasher",
        "data": None,
        "error": "The action failed on the server; the error is in the server log.",
    }
    assert ops_count("crasher", "error") == before + 1
    assert "admin ops action crasher failed" in caplog.text
    assert not SystemLog.objects.filter(action="admin_ops.crasher").exists()

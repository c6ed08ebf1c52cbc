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


def test_missing_action_is_a_400_with_the_field(ops_admin):
    response = ops_admin.post("/admin/ops/", {"params": {}}, format="json")

    assert response.status_code == 400
    assert "action" in response.json()["errors"]


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


def test_admin_ops_needs_credentials_and_the_ops_admin_role(api_client, operator):
    assert (
        api_client.post("/admin/ops/", {"action": "list_actions"}, format="json").status_code == 401
    )
    assert (
        operator.post("/admin/ops/", {"action": "list_actions"}, format="json").status_code == 403
    )


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
        ("get", "/admin/ops/"),
        ("put", "/admin/ops/"),
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

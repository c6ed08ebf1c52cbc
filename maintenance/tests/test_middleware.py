"""The read-only shield: writes refused while the mode is not normal, nobody locked out."""

import json
from datetime import UTC, datetime, timedelta
from typing import TypedDict

import pytest
from django.test import Client

from maintenance import shared, state
from maintenance.models import MaintenanceWindow
from maintenance.services import create_window
from valhalla_ops import registry
from valhalla_ops.metrics import shield_blocked
from valhalla_ops.ops import OpsAction
from valhalla_ops.principals import SYSTEM

pytestmark = pytest.mark.django_db


class ShieldBody(TypedDict):
    status_code: int
    detail: str
    mode: str


READ_ONLY_BODY: ShieldBody = {
    "status_code": 503,
    "detail": "System is in read-only mode. Write operations are not allowed.",
    "mode": "read_only",
}
MAINTENANCE_BODY: ShieldBody = {
    "status_code": 503,
    "detail": "System is under maintenance. Write operations are not allowed.",
    "mode": "maintenance",
}
WRITES = ["post", "put", "patch", "delete"]


def _send(caller, method: str, path: str = "/system/clients/", **extra):
    return getattr(caller, method)(path, {}, format="json", **extra)


@pytest.mark.parametrize("method", WRITES)
def test_writes_get_the_seed_503_in_read_only_mode(operator, set_maintenance_mode, method):
    set_maintenance_mode("read_only")

    response = _send(operator, method)

    assert response.status_code == 503
    assert response.json() == READ_ONLY_BODY
    assert response["Retry-After"] == "300"
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize("method", WRITES)
def test_writes_get_the_stronger_503_in_maintenance_mode(operator, set_maintenance_mode, method):
    set_maintenance_mode("maintenance")

    response = _send(operator, method, "/system/clients/1")

    assert response.status_code == 503
    assert response.json() == MAINTENANCE_BODY


@pytest.mark.parametrize("method", ["get", "head", "options"])
@pytest.mark.parametrize("mode", ["normal", "read_only", "maintenance"])
def test_safe_methods_always_pass(viewer, set_maintenance_mode, mode, method):
    set_maintenance_mode(mode)

    response = getattr(viewer, method)("/system/logs")

    assert response.status_code == 200


def test_writes_pass_in_normal_mode(operator, set_maintenance_mode):
    set_maintenance_mode("normal")

    response = operator.post("/system/clients/", {"name": "n", "client_type": "svc"}, format="json")

    assert response.status_code == 201


def test_blocked_writes_are_counted(operator, set_maintenance_mode):
    set_maintenance_mode("read_only")
    before = shield_blocked.labels("read_only")._value.get()

    operator.post("/system/clients/", {}, format="json")

    assert shield_blocked.labels("read_only")._value.get() == before + 1


def test_retry_after_counts_down_to_the_end_of_the_running_window(
    operator, set_maintenance_mode, time_machine
):
    time_machine.move_to(datetime(2026, 3, 1, 12, 0, tzinfo=UTC), tick=False)
    start = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)
    create_window(actor=SYSTEM, starts_at=start, ends_at=start + timedelta(hours=2))
    set_maintenance_mode("maintenance")

    at_noon = operator.post("/system/clients/", {}, format="json")
    time_machine.move_to(datetime(2026, 3, 1, 12, 59, 30, tzinfo=UTC), tick=False)
    near_the_end = operator.post("/system/clients/", {}, format="json")

    assert at_noon["Retry-After"] == "3600"
    assert near_the_end["Retry-After"] == "30"


def test_retry_after_ignores_windows_not_running(operator, set_maintenance_mode, settings):
    settings.MAINTENANCE_RETRY_AFTER = 120
    now = datetime.now(UTC)
    create_window(
        actor=SYSTEM, starts_at=now + timedelta(hours=1), ends_at=now + timedelta(hours=2)
    )
    set_maintenance_mode("read_only")

    response = operator.post("/system/clients/", {}, format="json")

    assert response["Retry-After"] == "120"


def test_admin_browser_gets_an_html_page(staff_user, set_maintenance_mode):
    set_maintenance_mode("read_only")
    browser = Client()
    browser.force_login(staff_user)

    response = browser.post(
        "/admin/clients/apiclient/add/", {"name": "x"}, HTTP_ACCEPT="text/html,*/*;q=0.8"
    )

    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/html")
    assert READ_ONLY_BODY["detail"] in response.content.decode()
    assert response["Retry-After"] == "300"
    assert "No end is scheduled" in response.content.decode()
    assert '<span class="retry-after">300</span>' in response.content.decode()


def test_admin_without_html_accept_gets_json(staff_user, set_maintenance_mode):
    set_maintenance_mode("read_only")
    browser = Client()
    browser.force_login(staff_user)

    response = browser.post("/admin/clients/apiclient/add/", HTTP_ACCEPT="application/json")

    assert response.json() == READ_ONLY_BODY


def test_unreadable_state_refuses_writes_and_lets_reads_pass(
    viewer, operator, monkeypatch, settings
):
    def refuse():
        raise state.StateUnavailable("database down")

    monkeypatch.setattr(state, "load_from_database", refuse)

    write = operator.post("/system/clients/", {}, format="json")
    read = viewer.get("/system/logs")

    assert write.status_code == 503
    assert write.json()["mode"] == "unknown"
    assert write.json()["unavailable"] == "maintenance state"
    assert write["Retry-After"] == str(settings.OUTAGE_RETRY_AFTER)  # an outage, not a window
    assert read.status_code == 200


@pytest.mark.parametrize("mode", ["read_only", "maintenance"])
def test_warm_shield_costs_no_query(
    set_maintenance_mode, settings, django_assert_num_queries, mode
):
    settings.MAINTENANCE_STATE_CACHE_SECONDS = 60
    set_maintenance_mode(mode)
    client = Client()
    client.get("/healthz")

    with django_assert_num_queries(0):
        health = client.get("/healthz")
    # A write reads the singleton row by primary key, or asks Redis instead when it is set.
    with django_assert_num_queries(0 if shared.configured() else 1):
        refused = client.post("/system/clients/", {}, content_type="application/json")

    assert health.status_code == 200
    assert refused.status_code == 503


@pytest.mark.redis
def test_with_redis_a_write_is_judged_without_a_query(
    shared_redis, set_maintenance_mode, django_assert_num_queries
):
    set_maintenance_mode("read_only")
    client = Client()

    with django_assert_num_queries(0):  # one Redis round trip instead
        refused = client.post("/system/clients/", {}, content_type="application/json")

    assert refused.status_code == 503


def test_normal_mode_costs_no_query(settings, django_assert_num_queries):
    settings.MAINTENANCE_STATE_CACHE_SECONDS = 60
    client = Client()
    client.get("/healthz")

    with django_assert_num_queries(0):
        response = client.get("/healthz")

    assert response.status_code == 200


# --- exemptions ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["read_only", "maintenance"])
def test_state_endpoints_stay_writable(ops_admin, set_maintenance_mode, mode):
    set_maintenance_mode(mode)

    posted = ops_admin.post(
        "/system/maintenance/state", {"mode": "read_only", "reason": "x"}, format="json"
    )
    shortcut = ops_admin.post("/system/maintenance/state/normal?reason=done")

    assert posted.status_code == 200
    assert shortcut.status_code == 200
    assert shortcut.json()["mode"] == "normal"


def test_windows_stay_writable(ops_admin, set_maintenance_mode):
    set_maintenance_mode("maintenance")
    now = datetime.now(UTC)

    response = ops_admin.post(
        "/system/maintenance/windows",
        {"starts_at": now.isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat()},
        format="json",
    )

    assert response.status_code == 201


@pytest.mark.parametrize("action", ["get_maintenance_state", "set_maintenance_mode"])
def test_admin_ops_state_actions_stay_writable(ops_admin, set_maintenance_mode, action):
    set_maintenance_mode("maintenance")
    body = {"action": action, "params": {"mode": "normal", "reason": "back"}}

    response = ops_admin.post("/admin/ops/", body, format="json")

    assert response.status_code == 200
    assert response.json()["ok"] is True


def test_admin_ops_read_only_actions_stay_available(ops_admin, set_maintenance_mode):
    set_maintenance_mode("read_only")  # the seed's lockdown: read_only, then security_snapshot

    response = ops_admin.post("/admin/ops/", {"action": "security_snapshot"}, format="json")

    assert response.status_code == 200
    assert response.json()["data"]["maintenance"]["mode"] == "read_only"


@pytest.fixture
def mutating_action():
    registry.ops_actions.register(
        "test_mutate", OpsAction(lambda *, actor, params: "done", "test", mutating=True)
    )
    yield "test_mutate"
    registry.ops_actions._entries.pop("test_mutate")


def test_admin_ops_other_mutating_actions_are_refused(
    ops_admin, set_maintenance_mode, mutating_action
):
    set_maintenance_mode("read_only")

    response = ops_admin.post("/admin/ops/", {"action": mutating_action}, format="json")

    assert response.status_code == 503


@pytest.mark.parametrize("body", ["{not json", json.dumps(["set_maintenance_mode"]), "\xff"])
def test_admin_ops_with_a_bad_body_is_a_400_and_runs_nothing(ops_admin, set_maintenance_mode, body):
    set_maintenance_mode("read_only")

    response = ops_admin.post("/admin/ops/", body, content_type="application/json")

    assert response.status_code == 400
    assert state.current_mode() == "read_only"


@pytest.mark.parametrize("path", ["/admin/login/", "/admin/logout/"])
def test_sign_in_and_out_stay_writable(set_maintenance_mode, path):
    set_maintenance_mode("maintenance")

    response = Client().post(path, {"username": "nobody", "password": "wrong"})

    assert response.status_code != 503


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_health_checks_are_exempt(set_maintenance_mode, path):
    set_maintenance_mode("maintenance")

    response = Client().post(path)

    assert response.status_code == 405  # the view's own answer, not the shield's


def test_configured_prefixes_are_exempt(operator, set_maintenance_mode, settings):
    settings.MAINTENANCE_EXEMPT_PATHS = ["/system/clients"]
    set_maintenance_mode("read_only")

    response = operator.post("/system/clients/", {"name": "n", "client_type": "svc"}, format="json")

    assert response.status_code == 201


# --- database backstop ------------------------------------------------------------------

backstop = pytest.mark.urls("maintenance.tests.backstop_urls")


@backstop
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["read_only", "maintenance"])
def test_backstop_turns_a_sneaky_write_into_the_shield_503(set_maintenance_mode, mode):
    set_maintenance_mode(mode)

    response = Client().get("/backstop/write")

    assert response.status_code == 503
    assert response.json()["mode"] == mode
    assert response["Cache-Control"] == "no-store"
    assert not MaintenanceWindow.objects.exists()


@backstop
@pytest.mark.django_db(transaction=True)
def test_backstop_lets_bookkeeping_and_reads_through(set_maintenance_mode):
    set_maintenance_mode("read_only")

    written = Client().get("/backstop/bookkeeping")
    read = Client().get("/backstop/read")

    assert written.status_code == 200
    assert read.json() == {"windows": 1}
    assert MaintenanceWindow.objects.count() == 1


@backstop
@pytest.mark.django_db(transaction=True)
def test_backstop_leaves_exempt_requests_alone(set_maintenance_mode):
    set_maintenance_mode("maintenance")

    response = Client().get("/system/maintenance/backstop-write")

    assert response.status_code == 200
    assert MaintenanceWindow.objects.count() == 1


@backstop
def test_backstop_is_not_installed_in_normal_mode():
    response = Client().get("/backstop/write")

    assert response.status_code == 200
    assert response.json()["wrappers"] == 0


@pytest.mark.redis
@pytest.mark.parametrize("mode", ["normal", "read_only"])
def test_warm_reads_cost_no_query_and_no_redis_command(
    shared_redis, set_maintenance_mode, settings, django_assert_num_queries, monkeypatch, mode
):
    import redis.connection

    settings.MAINTENANCE_STATE_CACHE_SECONDS = 60
    set_maintenance_mode(mode)
    client = Client()
    client.get("/healthz")
    sent: list[object] = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(conn, command, check_health=True):
        sent.append(command)
        return original(conn, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)

    with django_assert_num_queries(0):
        response = client.get("/healthz")

    assert response.status_code == 200
    assert sent == []

"""Incident containment in a lockdown: ops-admins may deactivate or rotate a client and add or
tighten a rate-limit rule (REST, admin ops, admin); nothing else writes, and each is audited
with the mode it happened in."""

from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from rest_framework.test import APIClient

from clients.models import ApiClient
from maintenance.tests.test_middleware import MAINTENANCE_BODY, READ_ONLY_BODY
from ratelimits import services as ratelimit_services
from ratelimits.models import RateLimitRule
from valhalla_ops.models import SystemLog
from valhalla_ops.principals import SYSTEM
from valhalla_ops.writeguard import CONTAIN_PERM, containment_allowed

pytestmark = pytest.mark.django_db

LOCKDOWNS = ["read_only", "maintenance"]
BODIES = {"read_only": READ_ONLY_BODY, "maintenance": MAINTENANCE_BODY}
RULE: dict[str, Any] = {
    "scope": "ip",
    "key": "203.0.113.7",
    "max_requests": 5,
    "window_seconds": 60,
}


@pytest.fixture
def leaked(make_api_client):
    client, _key = make_api_client(name="leaked")  # in no group: anyone may act on it
    return client


@pytest.fixture
def rule():
    return ratelimit_services.create_rule(actor=SYSTEM, **RULE)


def assert_refused(response, mode: str) -> None:
    assert response.status_code == 503, response.content
    assert response.json() == BODIES[mode]
    assert response["Retry-After"] == "300"


def audit_mode(action: str) -> str:
    return SystemLog.objects.filter(action=action).latest("id").context["during_mode"]


def test_only_ops_admin_holds_the_containment_permission():
    codename = CONTAIN_PERM.split(".")[1]
    holders = Group.objects.filter(permissions__codename=codename)

    assert sorted(holders.values_list("name", flat=True)) == ["ops-admin"]


def test_containment_allowed_follows_the_permission(staff_user, superuser, django_user_model):
    operator_user = django_user_model.objects.create(username="op")
    operator_user.groups.add(Group.objects.get(name="ops-operator"))

    assert containment_allowed(staff_user) is True  # ops-admin
    assert containment_allowed(superuser) is True
    assert containment_allowed(operator_user) is False
    assert containment_allowed(None) is False


# --- REST ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", LOCKDOWNS)
def test_ops_admin_deactivates_a_client_in_a_lockdown(
    ops_admin, leaked, set_maintenance_mode, mode
):
    set_maintenance_mode(mode)

    response = ops_admin.post(f"/system/clients/{leaked.pk}/deactivate")

    assert response.status_code == 200
    leaked.refresh_from_db()
    assert leaked.active is False
    assert audit_mode("clients.deactivate") == mode


def test_ops_admin_rotates_a_client_in_read_only(ops_admin, leaked, set_maintenance_mode):
    set_maintenance_mode("read_only")
    old_prefix = leaked.key_prefix

    response = ops_admin.post(f"/system/clients/{leaked.pk}/rotate", {}, format="json")

    assert response.status_code == 200
    assert response.json()["api_key"]
    leaked.refresh_from_db()
    assert leaked.key_prefix != old_prefix
    assert audit_mode("clients.rotate") == "read_only"


@pytest.mark.parametrize("mode", LOCKDOWNS)
def test_ops_admin_adds_a_rule_in_a_lockdown(ops_admin, set_maintenance_mode, mode):
    set_maintenance_mode(mode)

    response = ops_admin.post("/system/ratelimits/rules", RULE, format="json")

    assert response.status_code == 201
    assert RateLimitRule.objects.filter(key="203.0.113.7").count() == 1
    assert audit_mode("ratelimits.create_rule") == mode


@pytest.mark.parametrize(
    "change",
    [{"max_requests": 1}, {"window_seconds": 3600}, {"description": "abuse"}],
)
def test_ops_admin_tightens_a_rule_in_read_only(ops_admin, rule, set_maintenance_mode, change):
    set_maintenance_mode("read_only")

    response = ops_admin.patch(f"/system/ratelimits/rules/{rule.pk}", change, format="json")

    assert response.status_code == 200
    rule.refresh_from_db()
    assert {name: getattr(rule, name) for name in change} == change
    assert audit_mode("ratelimits.update_rule") == "read_only"


def test_ops_admin_enables_a_rule_in_read_only(ops_admin, set_maintenance_mode):
    rule = ratelimit_services.create_rule(actor=SYSTEM, **RULE, enabled=False)
    set_maintenance_mode("read_only")

    response = ops_admin.patch(
        f"/system/ratelimits/rules/{rule.pk}", {"enabled": True}, format="json"
    )

    assert response.status_code == 200
    rule.refresh_from_db()
    assert rule.enabled is True


@pytest.mark.parametrize(
    "change",
    [
        {"max_requests": 6},
        {"window_seconds": 30},
        {"enabled": False},
        {"key": "203.0.113.8"},
        {"scope": "path", "key": "/system/"},
    ],
)
def test_loosening_a_rule_is_refused_in_read_only(ops_admin, rule, set_maintenance_mode, change):
    set_maintenance_mode("read_only")

    response = ops_admin.patch(f"/system/ratelimits/rules/{rule.pk}", change, format="json")

    assert_refused(response, "read_only")
    rule.refresh_from_db()
    assert (rule.max_requests, rule.window_seconds, rule.enabled) == (5, 60, True)


@pytest.mark.parametrize("mode", LOCKDOWNS)
def test_an_operators_rule_still_gets_the_seed_503(operator, set_maintenance_mode, mode):
    set_maintenance_mode(mode)

    response = operator.post("/system/ratelimits/rules", RULE, format="json")

    assert_refused(response, mode)
    assert not RateLimitRule.objects.exists()


def test_an_operator_cannot_deactivate_in_read_only(operator, leaked, set_maintenance_mode):
    set_maintenance_mode("read_only")

    response = operator.post(f"/system/clients/{leaked.pk}/deactivate")

    assert_refused(response, "read_only")
    leaked.refresh_from_db()
    assert leaked.active is True


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/system/clients/", {"name": "new", "client_type": "svc"}),
        ("post", "/system/clients/{leaked}/activate", None),
        ("patch", "/system/clients/{leaked}", {"description": "x"}),
        ("delete", "/system/ratelimits/rules/{rule}", None),
        ("put", "/system/ratelimits/rules/{rule}", {**RULE, "max_requests": 1}),
    ],
)
def test_everything_else_is_refused_for_ops_admin_too(
    ops_admin, leaked, rule, set_maintenance_mode, method, path, body
):
    set_maintenance_mode("read_only")
    url = path.format(leaked=leaked.pk, rule=rule.pk)

    response = getattr(ops_admin, method)(url, body, format="json")

    assert_refused(response, "read_only")


def test_anonymous_containment_calls_are_401_not_503(leaked, set_maintenance_mode):
    set_maintenance_mode("read_only")

    response = APIClient().post(f"/system/clients/{leaked.pk}/deactivate")

    assert response.status_code == 401


def test_in_normal_mode_containment_needs_no_special_permission(operator, leaked):
    response = operator.post(f"/system/clients/{leaked.pk}/deactivate")

    assert response.status_code == 200
    assert "during_mode" not in SystemLog.objects.get(action="clients.deactivate").context


# --- admin ops ---------------------------------------------------------------------------------


def test_ops_actions_contain_an_incident_in_read_only(ops_admin, leaked, set_maintenance_mode):
    set_maintenance_mode("read_only")

    def run(action: str, params: dict) -> dict:
        response = ops_admin.post(
            "/admin/ops/", {"action": action, "params": params}, format="json"
        )
        assert response.status_code == 200, response.content
        return response.json()

    rotated = run("rotate_client", {"client_id": leaked.pk, "grace_seconds": 0})
    deactivated = run("deactivate_client", {"client_id": leaked.pk})
    blocked = run("block", {"scope": "ip", "key": "198.51.100.9"})

    assert rotated["ok"] is True
    assert rotated["data"]["api_key"]
    assert deactivated["data"]["active"] is False
    assert (blocked["data"]["max_requests"], blocked["data"]["window_seconds"]) == (1, 3600)
    for action in ("clients.rotate", "clients.deactivate", "ratelimits.create_rule"):
        assert audit_mode(action) == "read_only"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"client_id": "one"}, "client_id"),
        ({}, "client_id"),
        ({"client_id": 1, "grace_seconds": -1}, "grace_seconds"),
    ],
)
def test_ops_containment_params_are_typed(ops_admin, set_maintenance_mode, params, field):
    set_maintenance_mode("read_only")

    response = ops_admin.post(
        "/admin/ops/", {"action": "rotate_client", "params": params}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["ok"] is False
    assert field in response.json()["error"]


def test_ops_block_with_a_bad_key_is_a_400(ops_admin):
    response = ops_admin.post(
        "/admin/ops/",
        {"action": "block", "params": {"scope": "ip", "key": "not-an-ip"}},
        format="json",
    )

    assert response.status_code == 400
    assert "key" in response.json()["error"]


def test_ops_unknown_client_is_a_404(ops_admin):
    response = ops_admin.post(
        "/admin/ops/",
        {"action": "deactivate_client", "params": {"client_id": 999999}},
        format="json",
    )

    assert response.status_code == 404
    assert response.json()["ok"] is False


@pytest.fixture
def ops_runner_without_containment(make_api_client):
    """Runs admin ops and changes clients, but does not hold the containment permission."""
    group = Group.objects.create(name="ops-runner")
    codenames = ["run_admin_ops", "change_apiclient", "add_ratelimitrule", "view_apiclient"]
    group.permissions.add(*Permission.objects.filter(codename__in=codenames))
    _client, key = make_api_client(name="runner", groups=("ops-runner",))
    caller = APIClient()
    caller.credentials(HTTP_X_API_KEY=key)
    return caller


def test_ops_containment_needs_the_containment_permission(
    ops_runner_without_containment, leaked, set_maintenance_mode
):
    set_maintenance_mode("read_only")

    response = ops_runner_without_containment.post(
        "/admin/ops/",
        {"action": "deactivate_client", "params": {"client_id": leaked.pk}},
        format="json",
    )

    assert_refused(response, "read_only")
    leaked.refresh_from_db()
    assert leaked.active is True


def test_ops_containment_runs_in_normal_mode_without_it(ops_runner_without_containment, leaked):
    response = ops_runner_without_containment.post(
        "/admin/ops/",
        {"action": "deactivate_client", "params": {"client_id": leaked.pk}},
        format="json",
    )

    assert response.status_code == 200
    leaked.refresh_from_db()
    assert leaked.active is False


def test_ops_block_needs_the_permission_to_add_rules(make_api_client):
    group = Group.objects.create(name="ops-only")
    group.permissions.add(Permission.objects.get(codename="run_admin_ops"))
    _client, key = make_api_client(name="ops-only", groups=("ops-only",))
    caller = APIClient()
    caller.credentials(HTTP_X_API_KEY=key)

    response = caller.post(
        "/admin/ops/",
        {"action": "block", "params": {"scope": "ip", "key": "192.0.2.1"}},
        format="json",
    )

    assert response.status_code == 403
    assert not RateLimitRule.objects.exists()


def test_ops_containment_needs_the_clients_permission(make_api_client, leaked):
    group = Group.objects.create(name="ops-only")
    group.permissions.add(Permission.objects.get(codename="run_admin_ops"))
    _client, key = make_api_client(name="ops-only", groups=("ops-only",))
    caller = APIClient()
    caller.credentials(HTTP_X_API_KEY=key)

    response = caller.post(
        "/admin/ops/",
        {"action": "deactivate_client", "params": {"client_id": leaked.pk}},
        format="json",
    )

    assert response.status_code == 403
    leaked.refresh_from_db()
    assert leaked.active is True


# --- admin -----------------------------------------------------------------------------------


def admin_action(browser: Client, action: str, pks: list[int]):
    data = {"action": action, "_selected_action": [str(pk) for pk in pks], "index": "0"}
    return browser.post("/admin/clients/apiclient/", data, HTTP_ACCEPT="text/html")


@pytest.mark.parametrize("mode", LOCKDOWNS)
def test_admin_deactivates_and_rotates_in_a_lockdown(
    staff_user, leaked, set_maintenance_mode, mode
):
    set_maintenance_mode(mode)
    browser = Client()
    browser.force_login(staff_user)

    deactivated = admin_action(browser, "deactivate_clients", [leaked.pk])
    rotated = admin_action(browser, "rotate_keys", [leaked.pk])

    assert deactivated.status_code == 302
    assert rotated.status_code == 302  # to the page that shows the new key once
    assert b"api-key" in browser.get(rotated.url, HTTP_ACCEPT="text/html").content
    leaked.refresh_from_db()
    assert leaked.active is False
    assert audit_mode("clients.rotate") == mode


def test_admin_other_actions_are_refused_in_read_only(staff_user, leaked, set_maintenance_mode):
    ApiClient.objects.filter(pk=leaked.pk).update(active=False)
    set_maintenance_mode("read_only")
    browser = Client()
    browser.force_login(staff_user)

    response = admin_action(browser, "activate_clients", [leaked.pk])

    assert response.status_code == 503
    assert b"read-only mode" in response.content
    leaked.refresh_from_db()
    assert leaked.active is False


def rule_form(**overrides) -> dict:
    return {**RULE, "enabled": "on", "description": "", **overrides}


def test_admin_adds_and_tightens_a_rule_in_read_only(staff_user, rule, set_maintenance_mode):
    set_maintenance_mode("read_only")
    browser = Client()
    browser.force_login(staff_user)

    added = browser.post(
        "/admin/ratelimits/ratelimitrule/add/",
        rule_form(key="198.51.100.1"),
        HTTP_ACCEPT="text/html",
    )
    tightened = browser.post(
        f"/admin/ratelimits/ratelimitrule/{rule.pk}/change/",
        rule_form(max_requests=2),
        HTTP_ACCEPT="text/html",
    )

    assert (added.status_code, tightened.status_code) == (302, 302)
    assert RateLimitRule.objects.filter(key="198.51.100.1").exists()
    rule.refresh_from_db()
    assert rule.max_requests == 2
    assert audit_mode("ratelimits.create_rule") == "read_only"


def test_admin_loosening_a_rule_is_refused_in_read_only(staff_user, rule, set_maintenance_mode):
    set_maintenance_mode("read_only")
    browser = Client()
    browser.force_login(staff_user)

    response = browser.post(
        f"/admin/ratelimits/ratelimitrule/{rule.pk}/change/",
        rule_form(max_requests=50),
        HTTP_ACCEPT="text/html",
    )

    assert response.status_code == 503
    rule.refresh_from_db()
    assert rule.max_requests == 5


def test_admin_staff_without_the_permission_cannot_add_a_rule(
    django_user_model, set_maintenance_mode
):
    user = django_user_model.objects.create(username="op", is_staff=True)
    user.groups.add(Group.objects.get(name="ops-operator"))
    set_maintenance_mode("read_only")
    browser = Client()
    browser.force_login(user)

    response = browser.post(
        "/admin/ratelimits/ratelimitrule/add/", rule_form(), HTTP_ACCEPT="text/html"
    )

    assert response.status_code == 503
    assert not RateLimitRule.objects.exists()


def test_admin_pages_still_render_in_read_only(staff_user, rule, set_maintenance_mode):
    set_maintenance_mode("read_only")
    browser = Client()
    browser.force_login(staff_user)

    page = browser.get(f"/admin/ratelimits/ratelimitrule/{rule.pk}/change/")

    assert page.status_code == 200

"""The emergency-lockdown procedure in the admin, in a real browser."""

import pytest

from clients.models import ApiClient
from maintenance import services
from maintenance.models import MaintenanceState
from ratelimits.models import RateLimitRule
from valhalla_ops.models import SystemLog
from valhalla_ops.principals import SYSTEM
from valhalla_ops.tests.browser import (  # noqa: F401
    browser_fixture,
    make_staff_fixture,
    page_fixture,
    password_hash_fixture,
    staff_login_fixture,
)
from valhalla_ops.tests.test_browser_admin import CLIENTS_URL, run_action, switch_mode

pytestmark = pytest.mark.browser

RULES_URL = "/admin/ratelimits/ratelimitrule/"


def add_rule(page, *, key: str) -> None:
    page.goto(f"{RULES_URL}add/")
    page.select_option("#id_scope", "ip")
    page.fill("#id_key", key)
    page.fill("#id_window_seconds", "3600")
    page.fill("#id_max_requests", "1")
    page.click("input[name=_save]")


def test_emergency_lockdown_in_the_admin(page, staff_login, make_api_client):
    leaked, _key = make_api_client(name="leaked", groups=("ops-viewer",))
    staff_login("oncall", groups=("ops-admin",))

    switch_mode(page, mode="read_only", reason="EMERGENCY")
    page.goto("/admin/")
    dashboard = page.locator("#ops-dashboard").inner_text()
    run_action(page, action="deactivate_clients", pks=[leaked.pk])
    deactivated = page.locator("ul.messagelist li.success").inner_text()
    add_rule(page, key="198.51.100.23")
    added = page.locator("ul.messagelist li.success").inner_text()
    switch_mode(page, mode="normal", reason="contained")
    page.goto(CLIENTS_URL)

    assert "read_only" in dashboard
    assert "Deactivated 1 client(s)." in deactivated
    assert "198.51.100.23" in added
    assert not ApiClient.objects.get(pk=leaked.pk).active
    assert RateLimitRule.objects.get(key="198.51.100.23").max_requests == 1
    assert MaintenanceState.objects.get().mode == "normal"
    assert page.locator(".maintenance-banner").count() == 0
    modes = SystemLog.objects.filter(action__in=["clients.deactivate", "ratelimits.create_rule"])
    assert {log.context["during_mode"] for log in modes} == {"read_only"}


def test_an_operator_cannot_add_a_rule_in_the_admin_during_read_only(page, staff_login):
    staff_login("helper", groups=("ops-operator",))
    services.set_mode(actor=SYSTEM, mode="read_only", reason="EMERGENCY")  # commits, publishes

    page.goto(f"{RULES_URL}add/")

    # The form is shown disabled with the reason, so nothing typed is lost to a refusal.
    assert "read-only mode" in page.locator("#lockdown-notice").inner_text()
    assert page.locator("#id_key").is_disabled()
    assert page.locator("input[name=_save]").count() == 0
    assert not RateLimitRule.objects.exists()

"""The ops console in a real browser: sign-in, dashboard, API clients, audit log, maintenance."""

import httpx
import pytest

from clients.keys import hash_key
from clients.models import ApiClient
from clients.tests.fixtures import tampered
from maintenance.models import MaintenanceState
from valhalla_ops.models import SystemLog
from valhalla_ops.tests.browser import (  # noqa: F401
    PASSWORD,
    browser_fixture,
    make_staff_fixture,
    page_fixture,
    password_hash_fixture,
    staff_login_fixture,
)

pytestmark = pytest.mark.browser

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLIENTS_URL = "/admin/clients/apiclient/"
AUDIT_URL = "/admin/valhalla_ops/systemlog/"
MAINTENANCE_URL = "/admin/maintenance/maintenancestate/"


def add_client(page, *, name: str, client_type: str, groups: tuple[str, ...] = ()) -> str:
    """Fill and save the admin add form; returns the key shown on the result page."""
    page.goto(f"{CLIENTS_URL}add/")
    page.fill("#id_name", name)
    page.fill("#id_client_type", client_type)
    for group in groups:  # the filter_horizontal widget: pick on the left, move right
        page.select_option("#id_groups_from", label=group)
        page.click("#id_groups_add")
    page.click("input[name=_save]")
    return page.locator("code.api-key").inner_text().strip()


def run_action(page, *, action: str, pks: list[int]) -> None:
    page.goto(CLIENTS_URL)
    for pk in pks:
        page.check(f"input.action-select[value='{pk}']")
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")


def switch_mode(page, *, mode: str, reason: str) -> None:
    page.goto(MAINTENANCE_URL)
    page.select_option("#id_mode", mode)
    page.fill("#id_reason", reason)
    page.click("#maintenance-mode-form [type=submit]")
    message = page.locator("ul.messagelist li.success").inner_text()
    assert message.strip() == f"Maintenance mode is now {mode}."


def test_superuser_signs_in_and_sees_the_dashboard(page, make_staff, tmp_path):
    make_staff("root", superuser=True)
    shot = tmp_path / "dashboard.png"

    page.goto("/admin/")
    page.wait_for_url("**/admin/login/?next=/admin/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "not-the-password")
    page.click("#login-form [type=submit]")
    refused = page.locator(".errornote").inner_text()
    page.fill("#id_password", PASSWORD)
    page.click("#login-form [type=submit]")
    page.wait_for_url("**/admin/")
    page.screenshot(path=str(shot), full_page=True)

    assert "enter the correct username and password" in refused
    assert "Valhalla Ops" in page.title()
    dashboard = page.locator("#ops-dashboard")
    assert "At a glance" in dashboard.locator("h2").inner_text()
    for section in ("clients", "audit"):
        assert dashboard.locator(f"table.ops-box[data-section='{section}']").count() == 1
    assert "root" in page.locator("#user-tools").inner_text().lower()
    image = shot.read_bytes()
    assert image.startswith(PNG_MAGIC)
    assert len(image) > 10_000


def test_added_client_key_is_shown_once_and_authenticates(page, staff_login, live_server):
    staff_login("root", superuser=True)

    key = add_client(page, name="billing", client_type="service", groups=("ops-viewer",))
    api = f"{live_server.url}/system/clients/"
    with_key = httpx.get(api, headers={"X-API-Key": key})
    wrong_key = httpx.get(api, headers={"X-API-Key": tampered(key)})
    client = ApiClient.objects.get(name="billing")
    page.goto(f"{CLIENTS_URL}{client.pk}/change/")
    change_page = page.content()
    page.goto(CLIENTS_URL)
    changelist = page.content()

    assert key.startswith("vo_live_")
    assert hash_key(key) == client.key_hash
    assert list(client.groups.values_list("name", flat=True)) == ["ops-viewer"]
    assert with_key.status_code == 200
    assert "billing" in with_key.text
    assert wrong_key.status_code == 401
    assert "billing" in change_page
    assert "billing" in changelist
    assert key not in change_page
    assert key not in changelist


def test_deactivate_action_deactivates_only_the_selected_client(page, staff_login, make_api_client):
    target, _key = make_api_client(name="retired")
    bystander, _key = make_api_client(name="kept")
    staff_login("root", superuser=True)

    run_action(page, action="deactivate_clients", pks=[target.pk])

    success = page.locator("ul.messagelist li.success")
    assert success.inner_text().strip() == "Deactivated 1 client(s)."
    target.refresh_from_db()
    bystander.refresh_from_db()
    assert target.active is False
    assert bystander.active is True


def test_audit_log_lists_admin_changes_and_is_read_only(page, staff_login):
    user = staff_login("auditor", superuser=True)
    add_client(page, name="ledger", client_type="service")
    client = ApiClient.objects.get(name="ledger")
    run_action(page, action="deactivate_clients", pks=[client.pk])

    page.goto(AUDIT_URL)
    rows = page.locator("#result_list tbody tr")
    texts = [rows.nth(index).inner_text() for index in range(rows.count())]
    add_page = page.goto(f"{AUDIT_URL}add/")

    for action in ("clients.create", "clients.deactivate"):
        matching = [text for text in texts if action in text]
        assert len(matching) == 1, texts
        assert "ledger" in matching[0]
        assert "auditor" in matching[0]
    assert SystemLog.objects.filter(actor=user.username, target_id=str(client.pk)).count() == 2
    page.goto(AUDIT_URL)
    assert page.locator(".object-tools a.addlink").count() == 0
    assert page.locator("input.action-select").count() == 0
    assert add_page.status == 403


def test_ops_admin_switches_read_only_and_back_with_a_banner(page, staff_login):
    staff_login("oncall", groups=("ops-admin",))
    banner = page.locator(".maintenance-banner")

    switch_mode(page, mode="read_only", reason="Database upgrade")
    page.goto(CLIENTS_URL)
    read_only_banner = banner.inner_text()
    read_only_state = MaintenanceState.objects.get()
    switch_mode(page, mode="normal", reason="")
    page.goto("/admin/")

    assert "read_only" in read_only_banner
    assert "Database upgrade" in read_only_banner
    assert read_only_state.mode == "read_only"
    assert read_only_state.changed_by == "oncall"
    assert banner.count() == 0
    assert page.locator("#ops-dashboard").count() == 1
    assert MaintenanceState.objects.get().mode == "normal"

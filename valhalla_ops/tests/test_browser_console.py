"""The ops console in a real browser: refusals, lockdowns, forms, lists, secrets, dashboard."""

import os
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from clients import admin as clients_admin
from clients import services as client_services
from clients.models import ApiClient
from exports.models import ExportJob
from maintenance import admin as maintenance_admin
from maintenance import services as maintenance_services
from maintenance.models import MaintenanceWindow
from notify import services as notify_services
from notify.models import NotificationChannel, NotificationOutbox
from ratelimits import services as ratelimit_services
from valhalla_ops import trend
from valhalla_ops.exceptions import Conflict, ServiceError
from valhalla_ops.models import SystemLog
from valhalla_ops.principals import SYSTEM
from valhalla_ops.tests.browser import (  # noqa: F401
    browser_fixture,
    make_staff_fixture,
    page_fixture,
    password_hash_fixture,
    staff_login_fixture,
)

pytestmark = pytest.mark.browser

CLIENTS_URL = "/admin/clients/apiclient/"
CHANNELS_URL = "/admin/notify/notificationchannel/"
EXPORTS_URL = "/admin/exports/exportjob/"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DOCS = Path(__file__).resolve().parents[2] / "docs"


def run_action(page, url: str, *, action: str, pks: list[int]) -> None:
    page.goto(url)
    for pk in pks:
        page.check(f"input.action-select[value='{pk}']")
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")


@pytest.fixture(autouse=True)
def _no_counts_from_other_tests():
    trend.forget()
    yield
    trend.forget()


def mail_channel() -> NotificationChannel:
    channel, _secret = notify_services.create_channel(
        actor=SYSTEM, name="mail", channel_type="email", target="ops@example.com"
    )
    return channel


def lock(mode: str = "read_only", reason: str = "Database upgrade") -> None:
    maintenance_services.set_mode(actor=SYSTEM, mode=mode, reason=reason)


def test_a_refused_grant_is_a_form_error_with_the_input_kept(page, staff_login):
    staff_login("operator", groups=("ops-operator",))

    page.goto(f"{CLIENTS_URL}add/")
    page.fill("#id_name", "billing")
    page.fill("#id_client_type", "service")
    page.select_option("#id_groups_from", label="ops-admin")
    page.click("#id_groups_add")
    response_status = []
    page.on("response", lambda response: response_status.append(response.status))
    page.click("input[name=_save]")
    page.wait_for_load_state()

    assert 500 not in response_status
    error = page.locator(".field-groups .errorlist").inner_text()
    assert "You cannot grant group 'ops-admin'" in error
    assert page.input_value("#id_name") == "billing"
    assert not ApiClient.objects.exists()


def test_a_bulk_action_refused_half_way_changes_nothing(page, staff_login, make_api_client):
    first, _key = make_api_client(name="first")
    second, _key = make_api_client(name="second")
    staff_login("root", superuser=True)
    real = client_services.deactivate_client

    def refuse_second(*, actor, client):
        if client.pk == second.pk:
            raise ServiceError("second is under investigation")
        return real(actor=actor, client=client)

    clients_admin.services.deactivate_client = refuse_second
    try:
        run_action(page, CLIENTS_URL, action="deactivate_clients", pks=[first.pk, second.pk])
    finally:
        clients_admin.services.deactivate_client = real

    error = page.locator("ul.messagelist li.error").inner_text()
    assert error.strip() == "Nothing was changed: second is under investigation"
    assert page.locator("ul.messagelist li.success").count() == 0
    assert set(ApiClient.objects.values_list("active", flat=True)) == {True}
    assert not SystemLog.objects.filter(action="clients.deactivate").exists()


def test_deleting_selected_users_is_audited(page, staff_login, make_staff):
    staff_login("root", superuser=True)
    doomed = [make_staff("loki"), make_staff("fenrir")]

    run_action(page, "/admin/auth/user/", action="delete_selected", pks=[u.pk for u in doomed])
    page.click("#content form [type=submit]")  # "Yes, I'm sure"

    success = page.locator("ul.messagelist li.success").inner_text()
    assert "Successfully deleted 2 users" in success
    assert set(User.objects.values_list("username", flat=True)) == {"root"}
    rows = SystemLog.objects.filter(action="auth.delete_user")
    assert sorted(rows.values_list("target_id", flat=True)) == sorted(str(u.pk) for u in doomed)
    assert {row.actor for row in rows} == {"root"}


def test_forms_are_disabled_with_the_reason_while_read_only(page, staff_login, make_api_client):
    client, _key = make_api_client(name="ledger")
    staff_login("root", superuser=True)
    lock()

    page.goto(f"{CLIENTS_URL}add/")
    add_notice = page.locator("#lockdown-notice").inner_text()
    add_disabled = page.locator("#id_name").is_disabled()
    add_buttons = page.locator("input[name=_save]").count()
    page.goto(f"{CLIENTS_URL}{client.pk}/change/")
    change_disabled = page.locator("#id_description").is_disabled()
    change_buttons = page.locator(".submit-row input[type=submit]").count()
    page.goto("/admin/maintenance/maintenancewindow/add/")
    window_notice = page.locator("#lockdown-notice").count()

    assert "read-only mode" in add_notice
    assert "(Database upgrade)" in add_notice
    assert "No end is scheduled" in add_notice
    assert add_disabled is True
    assert add_buttons == 0
    assert change_disabled is True
    assert change_buttons == 0
    assert window_notice == 0  # the maintenance pages stay writable


def test_lockdown_allows_hook_keeps_a_form_enabled(page, staff_login, monkeypatch):
    staff_login("root", superuser=True)
    lock()
    monkeypatch.setattr(
        clients_admin.ApiClientAdmin, "lockdown_allows", lambda self, request, obj: True
    )

    page.goto(f"{CLIENTS_URL}add/")

    assert page.locator("#lockdown-notice").count() == 0
    assert page.locator("#id_name").is_disabled() is False
    assert page.locator("input[name=_save]").count() == 1


def test_refusal_page_gives_the_running_windows_retry_after(page, staff_login):
    staff_login("root", superuser=True)
    now = timezone.now()
    window = MaintenanceWindow.objects.create(
        starts_at=now - timedelta(minutes=5),
        ends_at=now + timedelta(minutes=20),
        mode="read_only",
        description="upgrade",
    )
    maintenance_services.set_mode(actor=SYSTEM, mode="read_only", window=window)

    page.goto(f"{CLIENTS_URL}add/")
    with page.expect_navigation() as navigation:
        page.evaluate("document.getElementById('apiclient_form').submit()")
    response = navigation.value
    shown = int(page.locator(".retry-after").inner_text())

    assert response.status == 503
    assert 1100 <= int(response.headers["retry-after"]) <= 1200
    assert abs(shown - int(response.headers["retry-after"])) <= 1
    assert "The maintenance window ends at" in page.content()


def test_channel_events_are_picked_and_the_secret_page_survives_a_reload(page, staff_login):
    staff_login("root", superuser=True)

    page.goto(f"{CHANNELS_URL}add/")
    type_labels = page.locator("#id_channel_type option").all_inner_texts()
    page.fill("#id_name", "pager")
    page.select_option("#id_channel_type", "webhook")
    page.fill("#id_target", "https://hooks.example.com/valhalla")
    page.check("input[name=events][value='maintenance.*']")
    page.check("input[name=events][value='ratelimit.exceeded']")
    page.fill("#id_other_events", "custom.thing")
    page.click("input[name=_save]")
    secret = page.locator("code.signing-secret").inner_text().strip()
    shown_at = page.url
    page.reload()
    reloaded = page.content()

    channel = NotificationChannel.objects.get()
    assert "SMS" in type_labels
    assert channel.events == ["maintenance.*", "ratelimit.exceeded", "custom.thing"]
    assert secret == channel.secret
    assert "/add/" not in shown_at
    assert secret not in reloaded
    assert "shown once already" in reloaded
    assert NotificationChannel.objects.count() == 1
    page.goto(f"{CHANNELS_URL}{channel.pk}/change/")
    assert page.locator("input[name=events][value='maintenance.*']").is_checked()
    assert page.input_value("#id_other_events") == "custom.thing"


def test_new_key_page_survives_a_reload_without_a_second_client(page, staff_login):
    staff_login("root", superuser=True)

    page.goto(f"{CLIENTS_URL}add/")
    page.fill("#id_name", "billing")
    page.fill("#id_client_type", "service")
    page.click("input[name=_save]")
    key = page.locator("code.api-key").inner_text().strip()
    page.reload()

    assert key.startswith("vo_live_")
    assert page.locator("code.api-key").count() == 0
    assert "shown once already" in page.locator(".already-shown").inner_text()
    assert page.locator(".errornote", has_text="already exists").count() == 0
    assert ApiClient.objects.count() == 1


def test_export_filters_are_a_form_per_job_type(page, staff_login):
    staff_login("root", superuser=True)
    SystemLog.objects.create(action="clients.create", category="clients", message="seed")

    page.goto(f"{EXPORTS_URL}add/")
    with page.expect_navigation():
        page.select_option("#id_job_type", "api_clients_export")
    client_fields = page.locator("[name^=param_]").evaluate_all("els => els.map(e => e.name)")
    with page.expect_navigation():
        page.select_option("#id_job_type", "audit_log_export")
    help_text = page.locator(".field-param_start_date .help").inner_text()
    page.fill("#id_param_start_date", "2024-01-01")
    page.fill("#id_param_end_date", "2024-01-31")
    page.select_option("#id_param_category", "clients")
    page.click("input[name=_save]")

    job = ExportJob.objects.get()
    assert sorted(client_fields) == ["param_active", "param_client_type", "param_format"]
    assert "First day, inclusive." in help_text
    assert job.job_type == "audit_log_export"
    assert job.filter_params == {
        "format": "csv",
        "start_date": "2024-01-01",
        "end_date": "2024-01-31",
        "category": "clients",
    }


def test_a_finished_export_job_has_no_save_buttons(page, staff_login):
    staff_login("root", superuser=True)
    job = ExportJob.objects.create(
        job_type="api_clients_export",
        status="completed",
        storage_url="file:///exports/1.csv",
        completed_at=timezone.now(),
    )

    page.goto(f"{EXPORTS_URL}{job.pk}/change/")

    assert page.locator(".submit-row input[type=submit]").count() == 0
    assert "Completed" in page.locator(".field-status").inner_text()


def test_outbox_list_shows_the_last_error(page, staff_login):
    staff_login("root", superuser=True)
    channel = mail_channel()
    error = "SMTP 451 temporary failure " + "x" * 200
    NotificationOutbox.objects.create(
        channel=channel, topic="notify.test", subject="Alert", body="b", last_error=error
    )

    page.goto("/admin/notify/notificationoutbox/")
    cell = page.locator("#result_list td.field-error .last-error")

    assert cell.inner_text().startswith("SMTP 451 temporary failure")
    assert cell.get_attribute("title") == error


def test_audit_log_list_fits_the_page(page, staff_login):
    staff_login("root", superuser=True)
    for index in range(5):
        SystemLog.objects.create(
            action="clients.update",
            category="clients",
            message="x",
            actor="someone-with-a-long-name@example.com",
            target=f"client-{index}-" + "long-target-name-" * 10,
            request_id="f" * 32,
            client_ip="2001:db8:85a3::8a2e:370:7334",
        )

    page.goto("/admin/valhalla_ops/systemlog/")
    widths = page.evaluate(
        """() => {
            const results = document.querySelector('#changelist .results');
            return [results.scrollWidth, results.clientWidth, document.documentElement.scrollWidth,
                    document.documentElement.clientWidth];
        }"""
    )

    assert widths[0] <= widths[1], widths
    assert widths[2] <= widths[3], widths


def test_view_site_goes_to_the_api_docs(page, staff_login):
    staff_login("root", superuser=True)

    link = page.locator("#user-tools a", has_text="View site")
    href = link.get_attribute("href")
    link.click()
    page.wait_for_url("**/api/docs/")

    assert href == "/api/docs/"
    assert page.locator("#swagger-ui").count() == 1


def test_mode_form_does_not_prefill_the_last_reason(page, staff_login):
    staff_login("oncall", groups=("ops-admin",))
    lock(reason="Database upgrade")

    page.goto("/admin/maintenance/maintenancestate/")

    assert page.input_value("#id_mode") == "read_only"
    assert page.input_value("#id_reason") == ""
    assert "Database upgrade" in page.locator(".maintenance-banner").inner_text()


def test_dashboard_uses_the_width_and_charts_the_last_hour(page, staff_login, live_server):
    staff_login("root", superuser=True)
    ratelimit_services.create_rule(
        actor=SYSTEM, scope="path", key="/system/ratelimits/", max_requests=1, window_seconds=60
    )
    api = f"{live_server.url}/system/ratelimits/rules"
    statuses = [httpx.get(api).status_code for _ in range(4)]
    lock()
    refused = httpx.post(f"{live_server.url}/system/clients/", json={"name": "x"})
    channel = mail_channel()
    for _ in range(3):
        NotificationOutbox.objects.create(channel=channel, topic="t", subject="s", body="b")
    fresh, _key = client_services.create_client(actor=SYSTEM, name="new", client_type="service")
    old, _key = client_services.create_client(actor=SYSTEM, name="old", client_type="service")
    ApiClient.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))

    page.goto("/admin/")
    dashboard = page.locator("#ops-dashboard")
    ratio = page.evaluate(
        "() => document.getElementById('ops-dashboard').getBoundingClientRect().width"
        " / document.getElementById('content-start').getBoundingClientRect().width"
    )
    totals = {
        chart.get_attribute("data-chart"): int(chart.get_attribute("data-total") or 0)
        for chart in dashboard.locator("figure.ops-chart").all()
    }
    unused = dashboard.locator("table[data-section='clients'] tr", has_text="unused 30 days")
    path = os.environ.get("DASHBOARD_SCREENSHOT")  # set to refresh docs/dashboard.png
    image = dashboard.screenshot(path=path) if path else dashboard.screenshot()

    assert statuses.count(429) == 3
    assert refused.status_code == 503
    assert ratio > 0.85  # the content area less its padding (Django's default: 600 px)
    assert totals["rate_limited"] == 3
    assert totals["unavailable"] == 1
    assert totals["outbox_backlog"] >= 3
    assert dashboard.locator("figure.ops-chart svg polyline").count() == 3
    assert unused.locator("td").inner_text() == "1"  # "old", not "new" created just now
    assert fresh.pk != old.pk
    assert image.startswith(PNG_MAGIC)


def test_dashboard_screenshot_in_the_docs_is_a_small_png():
    image = (DOCS / "dashboard.png").read_bytes()

    assert image.startswith(PNG_MAGIC)
    assert len(image) < 200_000


def test_a_refused_deletion_is_an_error_message(page, staff_login, make_api_client):
    client, _key = make_api_client(name="busy")
    staff_login("root", superuser=True)
    real = client_services.delete_client

    def refuse(*, actor, client):
        raise Conflict("Deactivate the client before deleting it.")

    clients_admin.services.delete_client = refuse
    try:
        page.goto(f"{CLIENTS_URL}{client.pk}/delete/")
        page.click("#content form [type=submit]")
    finally:
        clients_admin.services.delete_client = real

    error = page.locator("ul.messagelist li.error").inner_text()
    assert error.strip() == "Not deleted: Deactivate the client before deleting it."
    assert ApiClient.objects.filter(pk=client.pk).exists()


def test_a_refused_mode_switch_is_a_form_error(page, staff_login, monkeypatch):
    staff_login("oncall", groups=("ops-admin",))

    def refuse(**kwargs):
        raise ServiceError("The system is already in normal mode.", field="mode")

    monkeypatch.setattr(maintenance_admin.services, "set_mode", refuse)
    page.goto("/admin/maintenance/maintenancestate/")
    page.fill("#id_reason", "just checking")
    page.click("#maintenance-mode-form [type=submit]")

    form = page.locator("#maintenance-mode-form")
    assert "The system is already in normal mode." in form.locator(".errorlist").inner_text()
    assert page.input_value("#id_reason") == "just checking"


def test_the_window_action_reports_its_counts(page, staff_login):
    staff_login("root", superuser=True)
    now = timezone.now()
    windows = [
        MaintenanceWindow.objects.create(
            starts_at=now + timedelta(days=1), ends_at=now + timedelta(days=1, hours=1), active=a
        )
        for a in (True, True, False)
    ]

    run_action(
        page,
        "/admin/maintenance/maintenancewindow/",
        action="deactivate_windows",
        pks=[w.pk for w in windows],
    )

    success = page.locator("ul.messagelist li.success").inner_text()
    assert success.strip() == "Deactivated 2 window(s); skipped 1 already inactive."
    assert not MaintenanceWindow.objects.filter(active=True).exists()


def test_choice_labels_read_ip_api_key_and_sms(page, staff_login):
    staff_login("root", superuser=True)

    page.goto("/admin/ratelimits/ratelimitrule/add/")
    scopes = page.locator("#id_scope option").all_inner_texts()
    page.goto(f"{CHANNELS_URL}add/")
    channel_types = page.locator("#id_channel_type option").all_inner_texts()

    assert {"IP", "API key"} <= set(scopes)
    assert "SMS" in channel_types

"""The admin: windows, the maintenance-state page, the banner, and no lockout."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from maintenance import services
from maintenance.models import MaintenanceState, MaintenanceWindow
from valhalla_ops.models import SystemLog
from valhalla_ops.principals import SYSTEM

pytestmark = pytest.mark.django_db

STATE_PAGE = "/admin/maintenance/maintenancestate/"
START = datetime(2030, 1, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
def admin_browser(staff_user) -> Client:
    browser = Client()
    browser.force_login(staff_user)
    return browser


@pytest.fixture
def viewer_browser(django_user_model) -> Client:
    user = django_user_model.objects.create(username="looker", is_staff=True)
    user.groups.add(Group.objects.get(name="ops-viewer"))
    browser = Client()
    browser.force_login(user)
    return browser


def window_form(**overrides) -> dict:
    form = {
        "starts_at_0": "2030-01-01",
        "starts_at_1": "02:00:00",
        "ends_at_0": "2030-01-01",
        "ends_at_1": "04:00:00",
        "mode": "maintenance",
        "active": "on",
        "description": "upgrade",
    }
    return form | overrides


def test_state_page_is_linked_from_the_admin_index(admin_browser):
    index = admin_browser.get("/admin/")

    assert STATE_PAGE in index.content.decode()


def test_state_page_shows_the_mode_and_creates_nothing(admin_browser):
    services.set_mode(actor=SYSTEM, mode="read_only", reason="backup")
    MaintenanceState.objects.all().delete()

    response = admin_browser.get(STATE_PAGE)

    assert response.status_code == 200
    assert '<td id="maintenance-mode"><strong>normal</strong></td>' in response.content.decode()
    assert not MaintenanceState.objects.exists()


def test_state_page_switches_the_mode_with_a_reason(
    admin_browser, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_browser.post(STATE_PAGE, {"mode": "maintenance", "reason": "upgrade"})

    assert response.status_code == 302
    stored = MaintenanceState.objects.get()
    assert (stored.mode, stored.reason, stored.changed_by) == ("maintenance", "upgrade", "staff")
    log = SystemLog.objects.get(action="maintenance.set_mode")
    assert (log.actor_type, log.actor) == ("user", "staff")
    page = admin_browser.get(STATE_PAGE).content.decode()
    assert "Maintenance mode is now maintenance." in page


def test_state_page_refuses_a_bad_mode(admin_browser):
    response = admin_browser.post(STATE_PAGE, {"mode": "panic"})

    assert response.status_code == 200
    assert "errorlist" in response.content.decode()
    assert not MaintenanceState.objects.exists()


def test_viewer_sees_the_page_without_the_switch(viewer_browser):
    page = viewer_browser.get(STATE_PAGE)
    posted = viewer_browser.post(STATE_PAGE, {"mode": "maintenance"})

    assert page.status_code == 200
    assert "maintenance-mode-form" not in page.content.decode()
    assert posted.status_code == 403
    assert not MaintenanceState.objects.exists()


def test_window_admin_lists_and_filters(admin_browser):
    services.create_window(actor=SYSTEM, starts_at=START, ends_at=START + timedelta(hours=1))

    listing = admin_browser.get("/admin/maintenance/maintenancewindow/?active__exact=1&q=")

    assert listing.status_code == 200
    assert "1 maintenance window" in listing.content.decode()


def test_window_added_in_the_admin_goes_through_the_service(admin_browser):
    response = admin_browser.post("/admin/maintenance/maintenancewindow/add/", window_form())

    assert response.status_code == 302
    window = MaintenanceWindow.objects.get()
    assert (window.starts_at, window.description) == (START, "upgrade")
    assert SystemLog.objects.filter(action="maintenance.create_window", actor="staff").count() == 1


def test_window_admin_refuses_an_end_before_the_start(admin_browser):
    response = admin_browser.post(
        "/admin/maintenance/maintenancewindow/add/", window_form(ends_at_1="01:00:00")
    )

    assert response.status_code == 200
    assert "ends_at must be after starts_at." in response.content.decode()
    assert not MaintenanceWindow.objects.exists()


def test_started_window_start_cannot_change_in_the_admin(admin_browser):
    now = timezone.now()
    window = services.create_window(
        actor=SYSTEM, starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=1)
    )
    MaintenanceWindow.objects.filter(pk=window.pk).update(started_at=now)
    url = reverse("admin:maintenance_maintenancewindow_change", args=[window.pk])

    response = admin_browser.post(url, window_form(mode="read_only"))

    assert response.status_code == 200
    assert "can no longer change" in response.content.decode()
    window.refresh_from_db()
    assert window.mode == "maintenance"


def test_window_admin_change_is_audited(admin_browser):
    window = services.create_window(
        actor=SYSTEM, starts_at=START, ends_at=START + timedelta(hours=2)
    )
    url = reverse("admin:maintenance_maintenancewindow_change", args=[window.pk])

    response = admin_browser.post(url, window_form(description="bigger upgrade"))

    assert response.status_code == 302
    log = SystemLog.objects.get(action="maintenance.update_window")
    assert log.before is not None
    assert log.after is not None
    assert (log.before["description"], log.after["description"]) == ("", "bigger upgrade")


def test_deactivate_action(admin_browser):
    window = services.create_window(
        actor=SYSTEM, starts_at=START, ends_at=START + timedelta(hours=1)
    )

    admin_browser.post(
        "/admin/maintenance/maintenancewindow/",
        {"action": "deactivate_windows", "_selected_action": [window.pk]},
    )

    window.refresh_from_db()
    assert window.active is False


@pytest.mark.parametrize("path", ["/admin/", STATE_PAGE, "/admin/clients/apiclient/"])
def test_banner_on_every_admin_page_while_not_normal(admin_browser, set_maintenance_mode, path):
    set_maintenance_mode("read_only", reason="backup running")

    page = admin_browser.get(path).content.decode()

    assert 'class="maintenance-banner maintenance-read_only"' in page
    assert "backup running" in page
    assert "Valhalla Ops" in page


def test_banner_on_the_login_page(set_maintenance_mode):
    set_maintenance_mode("maintenance")

    page = Client().get("/admin/login/").content.decode()

    assert "maintenance-banner" in page


def test_no_banner_in_normal_mode(admin_browser):
    page = admin_browser.get("/admin/").content.decode()

    assert "maintenance-banner" not in page
    assert "Valhalla Ops" in page


def test_staff_signs_in_during_maintenance_and_switches_back(
    django_user_model, set_maintenance_mode, settings, django_capture_on_commit_callbacks
):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user = django_user_model.objects.create(username="oncall", is_staff=True)
    user.set_password("s3cret-pass")
    user.save()
    user.groups.add(Group.objects.get(name="ops-admin"))
    set_maintenance_mode("maintenance", reason="locked")
    browser = Client()

    login = browser.post(
        "/admin/login/", {"username": "oncall", "password": "s3cret-pass", "next": STATE_PAGE}
    )
    blocked = browser.post("/admin/clients/apiclient/add/", {}, HTTP_ACCEPT="text/html")
    with django_capture_on_commit_callbacks(execute=True):
        switched = browser.post(STATE_PAGE, {"mode": "normal", "reason": "all clear"})
    unblocked = browser.get("/admin/clients/apiclient/add/")

    assert (login.status_code, login["Location"]) == (302, STATE_PAGE)
    assert blocked.status_code == 503
    assert switched.status_code == 302
    assert MaintenanceState.objects.get().mode == "normal"
    assert unblocked.status_code == 200

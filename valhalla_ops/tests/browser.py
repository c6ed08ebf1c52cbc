"""Real-browser fixtures: Debian's Chromium driven by Playwright against Django's live server.

Nothing is registered in conftest.py: a test module imports the fixture functions, whose
names differ from the fixture names (`browser`, `page`, `password_hash`, `make_staff`,
`staff_login`) so that ruff sees no redefinition when a test takes `page` as an argument:

    from valhalla_ops.tests.browser import (  # noqa: F401
        browser_fixture, make_staff_fixture, page_fixture, password_hash_fixture,
        staff_login_fixture,
    )

Outside CI a missing Chromium skips the tests with the reason; in CI (`CI=true`) it fails them.
Playwright's own browser download is never used (`playwright install` does not work here).
"""

import os
from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group

from valhalla_ops.tests.services import unavailable

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests run as root
    "--headless=new",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000
VIEWPORT = {"width": 1280, "height": 900}
PASSWORD = "correct-horse-battery-staple-42"  # test users only


@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator:
    """One Chromium per test module.

    Playwright's sync API keeps an event loop running in the test thread, so Django would
    refuse the test's own ORM calls (SynchronousOnlyOperation) without DJANGO_ALLOW_ASYNC_UNSAFE.
    """
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()
    finally:
        playwright.stop()
        _restore_env("DJANGO_ALLOW_ASYNC_UNSAFE", previous)


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


@pytest.fixture(name="page")
def page_fixture(browser, live_server, transactional_db) -> Iterator:
    """A fresh browser context (no cookies) per test, its relative URLs on the live server."""
    context = browser.new_context(base_url=live_server.url, viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    context.close()


def sign_in(page, username: str, password: str = PASSWORD) -> None:
    """Through the real login form; ends on the admin index."""
    page.goto("/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("#login-form [type=submit]")
    page.wait_for_url("**/admin/")


@pytest.fixture(scope="module", name="password_hash")
def password_hash_fixture() -> str:
    """PASSWORD hashed once per module (a hash costs about half a second, more under load)."""
    return make_password(PASSWORD)


@pytest.fixture(name="make_staff")
def make_staff_fixture(transactional_db, django_user_model, password_hash) -> Callable:
    """make_staff(username, superuser=False, groups=()) -> a staff user whose password is PASSWORD.

    The stored hash is real, so the login form checks it exactly as in production.
    """

    def make(username: str, *, superuser: bool = False, groups: tuple[str, ...] = ()):
        user = django_user_model.objects.create(
            username=username, password=password_hash, is_staff=True, is_superuser=superuser
        )
        user.groups.add(*Group.objects.filter(name__in=groups))
        return user

    return make


@pytest.fixture(name="staff_login")
def staff_login_fixture(page, make_staff) -> Callable:
    """staff_login(username, superuser=False, groups=()) -> the user, signed in on `page`."""

    def login(username: str, *, superuser: bool = False, groups: tuple[str, ...] = ()):
        user = make_staff(username, superuser=superuser, groups=groups)
        sign_in(page, username)
        return user

    return login

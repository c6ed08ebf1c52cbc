"""`make run`'s admin-user step: create from DJANGO_SUPERUSER_*, or say how; never twice."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from valhalla_ops.models import SystemLog

pytestmark = pytest.mark.django_db


def ensure(*args: str) -> str:
    out = StringIO()
    call_command("ensure_superuser", *args, stdout=out)
    return out.getvalue()


def test_without_the_variables_it_says_how_and_creates_nothing(monkeypatch):
    monkeypatch.delenv("DJANGO_SUPERUSER_USERNAME", raising=False)
    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)

    output = ensure()

    assert "createsuperuser" in output
    assert "DJANGO_SUPERUSER_USERNAME" in output
    assert not get_user_model().objects.exists()


def test_the_variables_create_an_ops_admin_superuser_once(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "odin")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "ravens-huginn-muninn")
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "odin@example.com")

    first = ensure()
    again = ensure()
    quiet = ensure("--quiet")

    user = get_user_model().objects.get()
    assert first.strip() == "Created admin user odin."
    assert again.strip() == "Admin user odin already exists."
    assert quiet == ""
    assert (user.username, user.email, user.is_superuser, user.is_staff) == (
        "odin",
        "odin@example.com",
        True,
        True,
    )
    assert user.check_password("ravens-huginn-muninn")
    assert list(user.groups.values_list("name", flat=True)) == ["ops-admin"]
    row = SystemLog.objects.get(action="auth.create_superuser")
    assert row.actor == "manage.py ensure_superuser"
    assert "ravens" not in str(row.context) + row.message


def test_an_existing_superuser_silences_the_hint(monkeypatch, django_user_model):
    monkeypatch.delenv("DJANGO_SUPERUSER_USERNAME", raising=False)
    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)
    django_user_model.objects.create_superuser(username="thor", password="mjolnir-hammer-1")

    assert ensure() == ""

"""Users and groups changed in the admin are audited: one SystemLog row per change, no secret."""

import pytest
from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client

from valhalla_ops.models import SystemLog

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_for(superuser) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


def form_data(response) -> dict:
    """What the admin's change form would post back untouched."""
    form = response.context["adminform"].form
    data: dict = {"_save": "Save"}
    for name, field in form.fields.items():
        if field.disabled:
            continue
        value = form[name].value()
        if isinstance(field.widget, forms.MultiWidget):
            for index, part in enumerate(field.widget.decompress(value) or ()):
                data[f"{name}_{index}"] = "" if part is None else str(part)
        elif isinstance(field, forms.BooleanField):
            if value:
                data[name] = "on"
        elif isinstance(value, list | tuple):
            data[name] = [str(item) for item in value]
        else:
            data[name] = "" if value is None else value
    return data


def post_change(client: Client, url: str, **changes) -> None:
    data = form_data(client.get(url)) | changes
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors


def audit_rows(action: str) -> list[SystemLog]:
    return list(SystemLog.objects.filter(action=action))


def before_after(row: SystemLog) -> tuple[dict, dict]:
    assert row.before is not None
    assert row.after is not None
    return row.before, row.after


def test_granting_a_permission_to_a_group_is_audited(admin_client_for, superuser):
    group = Group.objects.get(name="ops-viewer")
    url = f"/admin/auth/group/{group.pk}/change/"
    extra = Permission.objects.get(codename="change_apiclient")
    current = [str(pk) for pk in group.permissions.values_list("pk", flat=True)]

    post_change(admin_client_for, url, permissions=[*current, str(extra.pk)])

    [row] = audit_rows("auth.update_group")
    assert row.actor == "root"
    assert row.target_id == str(group.pk)
    before, after = before_after(row)
    assert "clients.change_apiclient" not in before["permissions"]
    assert "clients.change_apiclient" in after["permissions"]


def test_making_a_user_superuser_is_audited(admin_client_for, django_user_model):
    user = django_user_model.objects.create(username="loki", is_staff=True)

    post_change(admin_client_for, f"/admin/auth/user/{user.pk}/change/", is_superuser="on")

    [row] = audit_rows("auth.update_user")
    before, after = before_after(row)
    assert (before["is_superuser"], after["is_superuser"]) == (False, True)
    assert row.target == "loki"


def test_saving_unchanged_writes_nothing(admin_client_for, django_user_model):
    user = django_user_model.objects.create(username="loki", is_staff=True)

    post_change(admin_client_for, f"/admin/auth/user/{user.pk}/change/")

    assert audit_rows("auth.update_user") == []


def test_creating_a_user_and_setting_a_password_are_audited_without_it(admin_client_for):
    password = "Yggdrasil-ash-tree-9"
    created = admin_client_for.post(
        "/admin/auth/user/add/",
        {"username": "freya", "password1": password, "password2": password, "_save": "Save"},
    )
    user = get_user_model().objects.get(username="freya")
    changed = admin_client_for.post(
        f"/admin/auth/user/{user.pk}/password/",
        {"password1": password + "x", "password2": password + "x"},
    )

    assert created.status_code == 302
    assert changed.status_code == 302
    [create] = audit_rows("auth.create_user")
    [change] = audit_rows("auth.change_password")
    assert create.after is not None
    assert create.after["username"] == "freya"
    assert change.target_id == str(user.pk)
    everything = str(list(SystemLog.objects.values()))
    assert password not in everything
    assert user.password not in everything


def test_deleting_a_group_is_audited(admin_client_for):
    group = Group.objects.create(name="temporary")

    response = admin_client_for.post(f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    [row] = audit_rows("auth.delete_group")
    assert row.before == {"name": "temporary", "permissions": []}
    assert not Group.objects.filter(name="temporary").exists()

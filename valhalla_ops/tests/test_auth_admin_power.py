"""Staff who may edit users and groups never hand out, or edit, more power than they hold."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db

USER_ADMIN_PERMS = ["view_user", "change_user", "delete_user", "view_group", "change_group"]


@pytest.fixture
def user_manager(django_user_model):
    """Staff in ops-operator who may also manage users and groups, but is no superuser."""
    user = django_user_model.objects.create(username="manager", is_staff=True)
    user.groups.add(Group.objects.get(name="ops-operator"))
    user.user_permissions.add(*Permission.objects.filter(codename__in=USER_ADMIN_PERMS))
    return user


@pytest.fixture
def manager_client(user_manager) -> Client:
    client = Client()
    client.force_login(user_manager)
    return client


def test_a_superuser_cannot_be_changed_or_deleted_by_a_non_superuser(manager_client, superuser):
    change = reverse("admin:auth_user_change", args=[superuser.pk])

    page = manager_client.get(change)
    posted = manager_client.post(change, {"username": "mine", "is_superuser": "on"})
    deleted = manager_client.post(
        reverse("admin:auth_user_delete", args=[superuser.pk]), {"post": "yes"}
    )

    assert 'name="_save"' not in page.content.decode()
    assert posted.status_code == 403
    assert deleted.status_code == 403
    superuser.refresh_from_db()
    assert superuser.username == "root"


def test_a_user_with_more_power_is_read_only(manager_client, django_user_model):
    boss = django_user_model.objects.create(username="boss", is_staff=True)
    boss.groups.add(Group.objects.get(name="ops-admin"))

    posted = manager_client.post(
        reverse("admin:auth_user_change", args=[boss.pk]), {"username": "boss", "groups": []}
    )

    assert posted.status_code == 403
    assert list(boss.groups.values_list("name", flat=True)) == ["ops-admin"]


def test_only_groups_and_permissions_the_manager_holds_are_offered(
    manager_client, django_user_model
):
    plain = django_user_model.objects.create(username="plain", is_staff=True)

    page = manager_client.get(reverse("admin:auth_user_change", args=[plain.pk]))

    form = page.context["adminform"].form
    offered = set(form.fields["groups"].queryset.values_list("name", flat=True))
    assert offered == {"ops-viewer", "ops-operator"}
    assert "is_superuser" not in form.fields
    codenames = set(form.fields["user_permissions"].queryset.values_list("codename", flat=True))
    assert "run_admin_ops" not in codenames
    assert "change_user" in codenames


def test_a_posted_grant_beyond_the_managers_power_is_a_form_error(
    manager_client, django_user_model
):
    plain = django_user_model.objects.create(username="plain", is_staff=True)
    admin_group = Group.objects.get(name="ops-admin")
    url = reverse("admin:auth_user_change", args=[plain.pk])
    data = {
        "username": "plain",
        "is_active": "on",
        "is_staff": "on",
        "is_superuser": "on",
        "groups": [admin_group.pk],
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
    }

    response = manager_client.post(url, data)

    assert response.status_code == 200
    assert "groups" in response.context["adminform"].form.errors
    plain.refresh_from_db()
    assert not plain.is_superuser
    assert not plain.groups.exists()


def test_a_group_with_more_power_is_read_only(manager_client):
    admin_group = Group.objects.get(name="ops-admin")

    posted = manager_client.post(
        reverse("admin:auth_group_change", args=[admin_group.pk]),
        {"name": "ops-admin", "permissions": []},
    )

    assert posted.status_code == 403
    assert admin_group.permissions.exists()


def test_a_superuser_still_manages_everything(client, superuser, django_user_model):
    client.force_login(superuser)
    plain = django_user_model.objects.create(username="plain")

    page = client.get(reverse("admin:auth_user_change", args=[plain.pk]))

    form = page.context["adminform"].form
    assert "is_superuser" in form.fields
    assert set(form.fields["groups"].queryset.values_list("name", flat=True)) >= {"ops-admin"}

"""In the admin too, staff cannot change, rotate or delete a client more powerful than they are."""

import pytest
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from clients.models import ApiClient
from valhalla_ops.models import SystemLog

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_staff(django_user_model) -> Client:
    user = django_user_model.objects.create(username="op-staff", is_staff=True)
    user.groups.add(Group.objects.get(name="ops-operator"))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin_client(make_api_client) -> ApiClient:
    client, _key = make_api_client(name="admin-svc", groups=("ops-admin",))
    return client


def test_a_more_powerful_client_is_shown_read_only(operator_staff, admin_client):
    page = operator_staff.get(reverse("admin:clients_apiclient_change", args=[admin_client.pk]))

    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert not page.context["has_change_permission"]
    assert not page.context["has_delete_permission"]


def test_a_posted_change_is_refused_and_audited(operator_staff, admin_client):
    url = reverse("admin:clients_apiclient_change", args=[admin_client.pk])

    response = operator_staff.post(url, {"name": "mine-now", "client_type": "service"})

    assert response.status_code == 403
    admin_client.refresh_from_db()
    assert admin_client.name == "admin-svc"
    assert SystemLog.objects.filter(action="clients.update.refused").count() == 1


def test_a_posted_delete_is_refused_and_audited(operator_staff, admin_client):
    ApiClient.objects.filter(pk=admin_client.pk).update(active=False)
    url = reverse("admin:clients_apiclient_delete", args=[admin_client.pk])

    response = operator_staff.post(url, {"post": "yes"})

    assert response.status_code == 403
    assert ApiClient.objects.filter(pk=admin_client.pk).exists()
    assert SystemLog.objects.filter(action="clients.delete.refused").count() == 1


@pytest.mark.parametrize(
    ("action", "verb"),
    [
        ("deactivate_clients", "deactivate"),
        ("rotate_keys", "rotate"),
        ("activate_clients", "activate"),
    ],
)
def test_bulk_actions_skip_a_more_powerful_client_with_a_message(
    operator_staff, admin_client, make_api_client, action, verb
):
    peer, _ = make_api_client(name="peer", groups=("ops-viewer",))
    key_hash = admin_client.key_hash

    response = operator_staff.post(
        reverse("admin:clients_apiclient_changelist"),
        {"action": action, "_selected_action": [admin_client.pk, peer.pk]},
        follow=True,
    )

    assert response.status_code == 200
    admin_client.refresh_from_db()
    assert admin_client.active
    assert admin_client.key_hash == key_hash
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("admin-svc" in m and "do not hold" in m for m in messages), messages
    assert SystemLog.objects.filter(action=f"clients.{verb}.refused").count() == 1


def test_deleting_an_active_client_in_the_admin_is_refused(client, superuser, make_api_client):
    live, _ = make_api_client(name="live")
    client.force_login(superuser)

    response = client.post(
        reverse("admin:clients_apiclient_changelist"),
        {"action": "delete_selected", "_selected_action": [live.pk], "post": "yes"},
        follow=True,
    )

    assert ApiClient.objects.filter(pk=live.pk).exists()
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("deactivate it before deleting it" in m for m in messages), messages

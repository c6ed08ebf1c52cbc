import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from clients import keys
from clients.models import ApiClient
from valhalla_ops.models import SystemLog

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_logged_in(client, superuser):
    client.force_login(superuser)
    return client


def test_adding_a_client_shows_the_key_once_and_not_in_messages(admin_client_logged_in):
    response = admin_client_logged_in.post(
        reverse("admin:clients_apiclient_add"),
        {
            "name": "Tyr",
            "client_type": "service",
            "description": "",
            "expires_at_0": "",
            "expires_at_1": "",
        },
        follow=True,
    )

    client = ApiClient.objects.get(name="Tyr")
    page = response.content.decode()
    shown = page.split('<code class="api-key">')[1].split("</code>")[0]
    assert response.status_code == 200
    assert response.redirect_chain[0][1] == 302  # POST, redirect, GET: a reload posts nothing
    assert "no-store" in response["Cache-Control"]
    reloaded = admin_client_logged_in.get(response.request["PATH_INFO"]).content.decode()
    assert shown not in reloaded
    assert "shown once already" in reloaded
    assert keys.hash_key(shown) == client.key_hash
    assert all(shown not in str(message) for message in get_messages(response.wsgi_request))
    change_page = admin_client_logged_in.get(
        reverse("admin:clients_apiclient_change", args=[client.pk])
    )
    assert shown not in change_page.content.decode()
    assert SystemLog.objects.filter(action="clients.create", target_id=str(client.pk)).count() == 1


def test_changing_a_client_goes_through_the_service(admin_client_logged_in, make_api_client):
    client, _ = make_api_client(name="Tyr")

    admin_client_logged_in.post(
        reverse("admin:clients_apiclient_change", args=[client.pk]),
        {
            "name": "Tyr",
            "client_type": "service",
            "description": "now described",
            "expires_at_0": "",
            "expires_at_1": "",
        },
    )

    client.refresh_from_db()
    row = SystemLog.objects.get(action="clients.update")
    assert client.description == "now described"
    assert row.before is not None
    assert row.after is not None
    assert row.before["description"] == ""
    assert row.after["description"] == "now described"


@pytest.mark.parametrize(
    ("action", "active"), [("deactivate_clients", False), ("activate_clients", True)]
)
def test_activate_and_deactivate_actions(admin_client_logged_in, make_api_client, action, active):
    client, _ = make_api_client(name="Tyr", active=not active)

    admin_client_logged_in.post(
        reverse("admin:clients_apiclient_changelist"),
        {"action": action, "_selected_action": [client.pk]},
    )

    client.refresh_from_db()
    assert client.active is active


def test_rotate_action_shows_each_new_key(admin_client_logged_in, make_api_client):
    first, old_first = make_api_client(name="one")
    second, _ = make_api_client(name="two")

    response = admin_client_logged_in.post(
        reverse("admin:clients_apiclient_changelist"),
        {"action": "rotate_keys", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )

    page = response.content.decode()
    shown = [chunk.split("</code>")[0] for chunk in page.split('<code class="api-key">')[1:]]
    first.refresh_from_db()
    assert len(shown) == 2
    assert old_first not in shown
    assert {keys.hash_key(key) for key in shown} == set(
        ApiClient.objects.values_list("key_hash", flat=True)
    )

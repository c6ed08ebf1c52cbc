"""Activating or deactivating a client raises client.activated / client.deactivated."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def client_events(subscribe):
    return subscribe("client.*")


def test_deactivate_then_activate_raise_one_event_each(operator, make_api_client, client_events):
    target, _key = make_api_client(name="bifrost")

    operator.post(f"/system/clients/{target.pk}/deactivate")
    operator.post(f"/system/clients/{target.pk}/activate")

    deactivated, activated = client_events()
    assert (deactivated.topic, activated.topic) == ("client.deactivated", "client.activated")
    assert deactivated.payload["client_id"] == target.pk
    assert deactivated.payload["name"] == "bifrost"
    assert "bifrost" in deactivated.subject
    assert "ops-operator-caller" in deactivated.payload["by"]


def test_a_refused_deactivation_raises_nothing(viewer, make_api_client, client_events):
    target, _key = make_api_client(name="bifrost")

    response = viewer.post(f"/system/clients/{target.pk}/deactivate")

    assert response.status_code == 403
    assert client_events() == []

import pytest
from django.db import transaction

from valhalla_ops import context
from valhalla_ops.audit import record_change, redact
from valhalla_ops.models import SystemLog
from valhalla_ops.principals import SYSTEM, ServicePrincipal, command_actor

pytestmark = pytest.mark.django_db


@pytest.mark.django_db(transaction=True)
def test_record_change_refuses_to_run_outside_a_transaction():
    with pytest.raises(RuntimeError, match="inside the transaction"):
        record_change(actor=SYSTEM, action="x.y")

    assert not SystemLog.objects.exists()


def test_secrets_are_redacted_at_any_depth():
    value = {
        "api_key": "sk",
        "nested": [{"webhook_secret": "whsec_x", "name": "ok"}],
        "Password": "p",
        "token": "t",
    }

    assert redact(value) == {
        "api_key": "[redacted]",
        "nested": [{"webhook_secret": "[redacted]", "name": "ok"}],
        "Password": "[redacted]",
        "token": "[redacted]",
    }


@pytest.mark.parametrize(
    ("actor", "expected"),
    [
        (SYSTEM, ("system", "", "system")),
        (command_actor("purge_expired"), ("system", "", "manage.py purge_expired")),
        (ServicePrincipal(client_id=7, name="Tyr"), ("client", "7", "client:Tyr")),
        (None, ("system", "", "system")),
    ],
)
def test_actor_is_recorded(actor, expected):
    with transaction.atomic():
        row = record_change(actor=actor, action="clients.test", before={"a": 1}, after={"a": 2})

    assert (row.actor_type, row.actor_id, row.actor) == expected
    assert row.category == "clients"
    assert (row.before, row.after) == ({"a": 1}, {"a": 2})


def test_user_actor_and_request_context(django_user_model):
    user = django_user_model.objects.create(username="alice")
    token = context.bind(context.RequestContext("req-1", "203.0.113.9"))
    try:
        with transaction.atomic():
            row = record_change(
                actor=user, action="ops.test", target=user, context_data={"api_key": "secret"}
            )
    finally:
        context.reset(token)

    row.refresh_from_db()
    assert (row.actor_type, row.actor_id, row.actor) == ("user", str(user.pk), "alice")
    assert (row.target_type, row.target_id) == ("auth.user", str(user.pk))
    assert (row.request_id, row.client_ip) == ("req-1", "203.0.113.9")
    assert row.context == {"api_key": "[redacted]"}


def test_logs_api_filters_by_category_level_actor_and_date(viewer):
    with transaction.atomic():
        record_change(actor=SYSTEM, action="clients.a")
        record_change(actor=command_actor("x"), action="ratelimits.b", level="warning")
    SystemLog.objects.filter(action="clients.a").update(created_at="2020-01-01T00:00:00Z")

    def names(query: str) -> list[str]:
        response = viewer.get(f"/system/logs/?{query}")
        assert response.status_code == 200, response.content
        return [row["action"] for row in response.json()["results"]]

    assert names("category=ratelimits") == ["ratelimits.b"]
    assert names("level=warning") == ["ratelimits.b"]
    assert names("actor=manage.py x") == ["ratelimits.b"]
    assert "clients.a" in names("created_before=2021-01-01T00:00:00Z")
    assert "clients.a" not in names("created_after=2021-01-01T00:00:00Z")


def test_logs_api_rejects_bad_filters(viewer):
    response = viewer.get("/system/logs/?level=loud&created_after=yesterday")

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"level", "created_after"}


def test_logs_api_needs_credentials_and_permission(api_client, nobody):
    assert api_client.get("/system/logs/").status_code == 401
    assert nobody.get("/system/logs/").status_code == 403


def test_logs_api_is_read_only(api_client, superuser):
    api_client.force_authenticate(superuser)

    assert api_client.post("/system/logs/", {}, format="json").status_code == 405
    assert api_client.get("/system/logs/").status_code == 200

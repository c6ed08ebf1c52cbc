import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from clients import keys
from clients.models import ApiClient
from valhalla_ops.models import SystemLog

pytestmark = pytest.mark.django_db


def run(*args: str) -> list[str]:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().splitlines()


def test_create_api_client_prints_the_key_alone_on_the_last_line(api_client):
    lines = run(
        "create_api_client",
        "--name",
        "Tyr",
        "--type",
        "service",
        "--group",
        "ops-viewer",
        "--description",
        "x",
    )

    key = lines[-1]
    client = ApiClient.objects.get(name="Tyr")
    assert keys.has_valid_checksum(key)
    assert client.key_hash == keys.hash_key(key)
    assert list(client.groups.values_list("name", flat=True)) == ["ops-viewer"]
    api_client.credentials(HTTP_X_API_KEY=key)
    assert api_client.get("/system/clients/").status_code == 200
    log = SystemLog.objects.get(action="clients.create")
    assert log.actor == "manage.py create_api_client"
    assert key not in str(log.__dict__)


def test_create_api_client_refuses_an_unknown_group():
    with pytest.raises(CommandError, match="Unknown group"):
        run("create_api_client", "--name", "Tyr", "--type", "service", "--group", "wizards")

    assert not ApiClient.objects.exists()


def test_create_api_client_refuses_a_duplicate_name(make_api_client):
    make_api_client(name="Tyr")

    with pytest.raises(CommandError, match="already exists"):
        run("create_api_client", "--name", "Tyr", "--type", "service")


def test_create_api_client_refuses_a_naive_expiry():
    with pytest.raises(CommandError, match="expires-at"):
        run(
            "create_api_client",
            "--name",
            "Tyr",
            "--type",
            "service",
            "--expires-at",
            "2030-01-01T00:00",
        )


def test_list_api_clients_shows_prefixes_not_keys(make_api_client):
    _, key = make_api_client(name="Heimdall", groups=("ops-viewer",))

    output = "\n".join(run("list_api_clients"))

    assert "Heimdall" in output
    assert key[:12] in output
    assert key not in output


def test_deactivate_api_client_by_name_and_id(make_api_client):
    client, _ = make_api_client(name="Heimdall")

    run("deactivate_api_client", "Heimdall")
    client.refresh_from_db()

    assert client.active is False
    with pytest.raises(CommandError, match="No API client"):
        run("deactivate_api_client", "999")


def test_rotate_api_client_prints_the_new_key_last(make_api_client):
    client, old_key = make_api_client(name="Heimdall")

    lines = run("rotate_api_client", str(client.pk), "--grace-seconds", "60")

    client.refresh_from_db()
    assert lines[-1] != old_key
    assert client.key_hash == keys.hash_key(lines[-1])
    assert client.previous_key_hash == keys.hash_key(old_key)


def test_rotate_api_client_refuses_a_negative_grace(make_api_client):
    make_api_client(name="Heimdall")

    with pytest.raises(CommandError, match="grace"):
        run("rotate_api_client", "Heimdall", "--grace-seconds", "-5")


def test_a_duplicate_name_reads_as_a_plain_sentence(make_api_client):
    make_api_client(name="nogroup")

    with pytest.raises(CommandError) as refused:
        run("create_api_client", "--name", "nogroup", "--type", "service")

    assert str(refused.value) == "name: A client named 'nogroup' already exists."


def test_create_api_client_refuses_an_expiry_in_the_past():
    with pytest.raises(CommandError, match="is in the past"):
        run(
            "create_api_client",
            "--name",
            "Tyr",
            "--type",
            "service",
            "--expires-at",
            "2020-01-01T00:00:00Z",
        )

    assert not ApiClient.objects.exists()


def test_list_api_clients_as_json(make_api_client):
    client, key = make_api_client(name="Heimdall", groups=("ops-viewer",))
    out = StringIO()

    call_command("list_api_clients", "--json", stdout=out)

    [row] = json.loads(out.getvalue())
    assert row["id"] == client.pk
    assert row["name"] == "Heimdall"
    assert row["active"] is True
    assert row["groups"] == ["ops-viewer"]
    assert row["key_prefix"] == client.key_prefix
    assert key not in out.getvalue()


def test_deactivating_an_inactive_client_warns_and_writes_no_second_audit_row(make_api_client):
    make_api_client(name="Heimdall")
    run("deactivate_api_client", "Heimdall")
    err = StringIO()

    call_command("deactivate_api_client", "Heimdall", stdout=StringIO(), stderr=err)

    assert "already inactive; nothing changed" in err.getvalue()
    assert SystemLog.objects.filter(action="clients.deactivate").count() == 1


def test_activate_api_client(make_api_client):
    client, _key = make_api_client(name="Heimdall", active=False)

    lines = run("activate_api_client", "Heimdall")

    client.refresh_from_db()
    assert client.active is True
    assert lines == [f"Activated API client #{client.pk} Heimdall."]
    log = SystemLog.objects.get(action="clients.activate")
    assert log.actor == "manage.py activate_api_client"


def test_activating_an_active_client_warns_and_changes_nothing(make_api_client):
    make_api_client(name="Heimdall")
    err = StringIO()

    call_command("activate_api_client", "Heimdall", stdout=StringIO(), stderr=err)

    assert "already active; nothing changed" in err.getvalue()
    assert not SystemLog.objects.filter(action="clients.activate").exists()


def test_activating_an_expired_client_warns_that_its_key_still_fails(make_api_client):
    client, _ = make_api_client(name="Heimdall", active=False)
    ApiClient.objects.filter(pk=client.pk).update(expires_at=timezone.now() - timedelta(days=1))
    err = StringIO()

    call_command("activate_api_client", "Heimdall", stdout=StringIO(), stderr=err)

    assert "it still will not work" in err.getvalue()


def test_rotating_a_deactivated_client_is_refused(make_api_client):
    client, _ = make_api_client(name="Heimdall", active=False)
    before = client.key_hash

    with pytest.raises(CommandError, match="is deactivated: a new key would not work"):
        run("rotate_api_client", "Heimdall")

    client.refresh_from_db()
    assert client.key_hash == before
    assert not SystemLog.objects.filter(action="clients.rotate").exists()

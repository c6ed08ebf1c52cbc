from io import StringIO

import pytest
from django.core.management import CommandError, call_command

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

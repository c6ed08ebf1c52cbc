"""The plaintext key is stored nowhere: not in the table, not in a dump, not in the audit log."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_a_database_dump_contains_no_plaintext_key(operator, make_api_client):
    _, generated = make_api_client(name="generated")
    supplied = operator.post(
        "/system/clients/",
        {"name": "TestClient", "client_type": "test", "api_key": "sk_test_123"},
        format="json",
    ).json()["api_key"]
    rotated = operator.post(
        f"/system/clients/{operator.api_client.pk}/rotate", {"grace_seconds": 60}, format="json"
    )

    out = StringIO()
    call_command("dumpdata", "--natural-foreign", stdout=out)
    dump = out.getvalue()

    json.loads(dump)  # a real, complete dump
    for key in (generated, supplied, rotated.json()["api_key"]):
        assert key not in dump
    assert "apiclient" in dump

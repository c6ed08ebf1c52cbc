"""Hostile input is a 4xx on every JSON operation of the schema, never a 500.

Deep nesting, invalid Unicode, NUL characters, oversized values and bodies, unknown fields and
other content types: each is refused with a clear message before anything is stored.
"""

import json

import pytest
from rest_framework.test import APIClient

from valhalla_ops.limits import MAX_JSON_DEPTH, MAX_PAYLOAD_BYTES, MAX_TEXT_LENGTH
from valhalla_ops.models import SystemLog
from valhalla_ops.tests.api_schema import admin_caller, operations

pytestmark = pytest.mark.django_db

WITH_BODY = [op for op in operations() if op.body_schema is not None]


@pytest.fixture
def admin(db) -> APIClient:
    return admin_caller("hostile-admin")


def send(caller: APIClient, op, path: str, raw: bytes | str, content_type="application/json"):
    return getattr(caller, op.method)(path, raw, content_type=content_type)


def nested(depth: int) -> str:
    return '{"a": ' * (depth - 1) + "{}" + "}" * (depth - 1)


def unchanged(before: int) -> bool:
    """Nothing was written: the audit log has no new row."""
    return SystemLog.objects.count() == before


ids = [op.id for op in WITH_BODY]


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 5_000, 100_000])
@pytest.mark.parametrize("op", WITH_BODY, ids=ids)
def test_deep_nesting_is_a_400(admin, resources, op, depth):
    before = SystemLog.objects.count()

    response = send(admin, op, resources[op.path], nested(depth))

    assert response.status_code == 400, response.content[:300]
    assert f"nested deeper than {MAX_JSON_DEPTH}" in response.content.decode()
    assert unchanged(before)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"x": "\\ud800x"}', "lone surrogate"),
        ('{"x": ["ok", {"y": "\\udfff"}]}', "lone surrogate"),
        ('{"\\ud800": 1}', "lone surrogate"),
        ('{"x": "a\\u0000b"}', "Null characters are not allowed."),
        ('{"x": {"k\\u0000": 1}}', "Null characters are not allowed."),
    ],
)
@pytest.mark.parametrize("op", WITH_BODY, ids=ids)
def test_unstorable_text_is_a_400_whatever_the_field(admin, resources, op, raw, message):
    field = next(iter(op.body_schema.get("properties", {"x": None})))
    before = SystemLog.objects.count()

    response = send(admin, op, resources[op.path], raw.replace('"x"', json.dumps(field)))

    assert response.status_code == 400, response.content[:300]
    assert message in response.content.decode()
    assert unchanged(before)


@pytest.mark.parametrize("op", WITH_BODY, ids=ids)
def test_invalid_utf8_and_non_json_constants_are_a_400(admin, resources, op):
    bad_bytes = send(admin, op, resources[op.path], b'{"x": "\xff\xfe"}')
    constant = send(admin, op, resources[op.path], '{"x": NaN}')

    assert bad_bytes.status_code == 400
    assert constant.status_code == 400


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz", "text/plain"],
)
@pytest.mark.parametrize("op", WITH_BODY, ids=ids)
def test_only_json_is_read(admin, resources, op, content_type):
    response = send(admin, op, resources[op.path], "action=list_actions", content_type)

    assert response.status_code == 415, response.content[:300]
    assert "Unsupported media type" in response.content.decode()


@pytest.mark.parametrize("op", WITH_BODY, ids=ids)
def test_a_body_over_the_upload_limit_is_a_413(admin, resources, op, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = json.dumps({"description": "x" * 20_000})

    response = send(admin, op, resources[op.path], body)

    assert response.status_code == 413
    assert "larger than 10000 bytes" in response.content.decode()


@pytest.mark.parametrize("op", WITH_BODY, ids=ids)
def test_unknown_fields_are_a_400_naming_them(admin, resources, op):
    before = SystemLog.objects.count()

    response = send(
        admin, op, resources[op.path], json.dumps({"is_superuser": True, "key_hash": "x"})
    )

    assert response.status_code == 400, response.content[:300]
    text = response.content.decode()
    assert "is_superuser" in text
    assert "key_hash" in text
    assert unchanged(before)


def unbounded_fields(op) -> list[tuple[str, object]]:
    """Each text or JSON-object property of the body, with a value just past its limit."""
    found: list[tuple[str, object]] = []
    for name, prop in op.body_schema.get("properties", {}).items():
        if prop.get("type") == "string" and "enum" not in prop:
            found.append((name, "x" * (prop.get("maxLength", MAX_TEXT_LENGTH) + 1)))
        elif prop.get("type") == "object":
            found.append((name, {"k": "x" * MAX_PAYLOAD_BYTES}))  # the largest JSON limit
    return found


OVERSIZE = [(op, name, value) for op in WITH_BODY for name, value in unbounded_fields(op)]


@pytest.mark.parametrize(
    ("op", "field", "value"), OVERSIZE, ids=[f"{op.id} {name}" for op, name, _ in OVERSIZE]
)
def test_every_text_and_json_field_is_bounded(admin, resources, op, field, value):
    prop = op.body_schema["properties"][field]
    assert prop.get("type") == "object" or prop.get("maxLength", 0) <= 65_536, prop
    before = SystemLog.objects.count()

    response = send(admin, op, resources[op.path], json.dumps({field: value}))

    assert response.status_code == 400, response.content[:300]
    assert field in response.content.decode()
    assert unchanged(before)


def test_the_notification_body_and_payload_have_their_own_limits(admin, resources):
    channel = resources["/system/notify/channels/{id}/"].rstrip("/").rsplit("/", 1)[-1]
    ok = {
        "channel_id": int(channel),
        "subject": "s",
        "body": "x" * 60_000,
        "payload": {"k": "x" * 60_000},
    }
    too_long = ok | {"body": "x" * 65_537}
    too_big = ok | {"payload": {"k": "x" * 65_536}}

    assert admin.post("/system/notify/", ok, format="json").status_code == 201
    assert admin.post("/system/notify/", too_long, format="json").json()["errors"].keys() == {
        "body"
    }
    assert admin.post("/system/notify/", too_big, format="json").json()["errors"].keys() == {
        "payload"
    }


def test_a_rule_key_beyond_the_id_range_is_a_400(admin):
    body = {"scope": "api_key", "key": str(2**63), "max_requests": 5}

    response = admin.post("/system/ratelimits/rules", body, format="json")

    assert response.status_code == 400
    assert "key" in response.json()["errors"]


def test_a_nul_in_admin_ops_params_is_a_400(admin):
    body = '{"action": "list_actions", "params": {"a\\u0000": 1}}'

    response = admin.post("/admin/ops/", body, content_type="application/json")

    assert response.status_code == 400
    assert "Null characters" in response.content.decode()


def test_a_body_without_content_still_works_for_actions_without_input(admin, resources):
    response = admin.post(resources["/system/clients/{id}/deactivate/"])

    assert response.status_code == 200


def test_a_body_without_a_declared_length_is_bounded_too(settings):
    # A chunked request declares no Content-Length, so only the parser sees how long it is.
    import io

    from valhalla_ops.exceptions import PayloadTooLarge
    from valhalla_ops.parsers import StrictJSONParser

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    body = json.dumps({"description": "x" * 200}).encode()

    with pytest.raises(PayloadTooLarge, match="larger than 100 bytes"):
        StrictJSONParser().parse(io.BytesIO(body), "application/json", {})

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from clients import keys
from clients.lookup import _cache
from clients.models import ApiClient
from clients.tests.fixtures import tampered
from valhalla_ops.models import SystemLog

pytestmark = pytest.mark.django_db

SEED_CLIENT = {"name": "TestClient", "client_type": "test", "api_key": "sk_test_123"}


def caller_with(key: str, header: str = "x-api-key") -> APIClient:
    client = APIClient()
    if header == "bearer":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    else:
        client.credentials(HTTP_X_API_KEY=key)
    return client


def test_create_the_seed_client_returns_201_with_the_key_once(operator):
    response = operator.post("/system/clients/", SEED_CLIENT, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["api_key"] == "sk_test_123"
    assert body["name"] == "TestClient"
    assert body["client_type"] == "test"
    assert body["active"] is True
    stored = ApiClient.objects.get(pk=body["id"])
    assert stored.key_hash == keys.hash_key("sk_test_123")
    assert "sk_test_123" not in str(stored.__dict__)


def test_create_without_key_generates_a_typed_key_that_authenticates(operator):
    response = operator.post(
        "/system/clients", {"name": "Tyr", "client_type": "test"}, format="json"
    )

    key = response.json()["api_key"]
    assert response.status_code == 201
    assert key.startswith("vo_test_")
    assert keys.has_valid_checksum(key)
    assert response.json()["key_prefix"] == key[:12]


def test_generated_key_for_a_service_is_live(operator):
    response = operator.post(
        "/system/clients/", {"name": "Heimdall", "client_type": "service"}, format="json"
    )

    assert response.json()["api_key"].startswith("vo_live_")


def test_list_and_detail_never_show_a_key_or_hash(operator):
    created = operator.post("/system/clients/", SEED_CLIENT, format="json").json()

    listing = operator.get("/system/clients/").content.decode()
    detail = operator.get(f"/system/clients/{created['id']}").content.decode()

    stored = ApiClient.objects.get(pk=created["id"])
    for text in (listing, detail):
        assert "sk_test_123" not in text
        assert stored.key_hash not in text
        assert "api_key" not in text
        assert "key_hash" not in text


def test_list_filters_by_active_and_client_type(operator, make_api_client):
    make_api_client(name="a", client_type="test")
    make_api_client(name="b", client_type="test", active=False)

    by_active = operator.get("/system/clients/?active=false").json()
    by_type = operator.get("/system/clients/?client_type=test").json()

    assert [row["name"] for row in by_active["results"]] == ["b"]
    assert {row["name"] for row in by_type["results"]} == {"a", "b"}


def test_list_is_paginated_with_limit_and_offset(operator, make_api_client):
    for index in range(5):
        make_api_client(name=f"paged-{index}")

    page = operator.get("/system/clients/?limit=2&offset=1").json()

    assert page["count"] == 6  # five plus the operator's own client
    assert len(page["results"]) == 2
    assert "offset=3" in page["next"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"client_type": "test"}, "name"),
        ({"name": "x"}, "client_type"),
        ({"name": "x", "client_type": "has space"}, "client_type"),
        ({"name": "x", "client_type": "test", "api_key": "short"}, "api_key"),
        (
            {
                "name": "x",
                "client_type": "test",
                "api_key": "vo_live_forgedkeywithoutchecksum123456",
            },
            "api_key",
        ),
        ({"name": "x", "client_type": "test", "groups": ["no-such-group"]}, "groups"),
        ({"name": "x", "client_type": "test", "expires_at": "tomorrow"}, "expires_at"),
    ],
)
def test_create_rejects_bad_input_with_field_messages(operator, payload, field):
    response = operator.post("/system/clients/", payload, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["status_code"] == 400
    assert field in body["errors"]


def test_duplicate_name_or_key_is_a_400(operator):
    operator.post("/system/clients/", SEED_CLIENT, format="json")

    same_name = operator.post(
        "/system/clients/", {**SEED_CLIENT, "api_key": "sk_other_456"}, format="json"
    )
    same_key = operator.post("/system/clients/", {**SEED_CLIENT, "name": "Other"}, format="json")

    assert same_name.status_code == 400
    assert "name" in same_name.json()["errors"]
    assert same_key.status_code == 400
    assert "api_key" in same_key.json()["errors"]


def test_operator_cannot_grant_a_group_with_more_power_than_its_own(operator):
    response = operator.post(
        "/system/clients/",
        {"name": "x", "client_type": "t", "groups": ["ops-admin"]},
        format="json",
    )

    assert response.status_code == 400
    assert "groups" in response.json()["errors"]
    assert not ApiClient.objects.filter(name="x").exists()


def test_operator_can_grant_its_own_group(operator):
    response = operator.post(
        "/system/clients/",
        {"name": "x", "client_type": "t", "groups": ["ops-viewer"]},
        format="json",
    )

    assert response.status_code == 201
    assert response.json()["groups"] == ["ops-viewer"]


@pytest.mark.parametrize("method", ["post", "patch"])
def test_a_group_name_with_a_nul_byte_is_a_400_not_a_database_error(
    operator, make_api_client, method
):
    # PostgreSQL refuses NUL in a text comparison; schemathesis found this as a 500.
    existing, _ = make_api_client(name="existing")
    path = "/system/clients/" if method == "post" else f"/system/clients/{existing.pk}/"
    body = {"name": "x", "client_type": "t", "groups": ["ops-viewer\x00"]}

    response = getattr(operator, method)(path, body, format="json")

    assert response.status_code == 400
    assert response.json()["errors"]["groups"] == ["Null characters are not allowed."]
    assert not ApiClient.objects.filter(name="x").exists()


def test_anonymous_gets_401_and_viewer_gets_403_on_create(api_client, viewer):
    anonymous = api_client.post("/system/clients/", SEED_CLIENT, format="json")
    forbidden = viewer.post("/system/clients/", SEED_CLIENT, format="json")

    assert anonymous.status_code == 401
    assert anonymous.json() == {
        "status_code": 401,
        "detail": "Authentication credentials were not provided.",
    }
    assert forbidden.status_code == 403
    assert forbidden.json()["status_code"] == 403


def test_client_without_groups_cannot_read(nobody):
    assert nobody.get("/system/clients/").status_code == 403


def test_viewer_reads(viewer):
    assert viewer.get("/system/clients/").status_code == 200


def test_unknown_id_is_404(operator):
    for path in ("/system/clients/999", "/system/clients/999/activate", "/system/clients/abc"):
        method = operator.post if path.endswith("activate") else operator.get
        response = method(path)
        assert response.status_code == 404, path
        assert response.json() == {"status_code": 404, "detail": "Not found."}


def test_deactivate_then_activate(operator, make_api_client, django_capture_on_commit_callbacks):
    client, key = make_api_client(name="target", groups=("ops-viewer",))
    assert caller_with(key).get("/system/clients/").status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(f"/system/clients/{client.pk}/deactivate")

    client.refresh_from_db()
    assert response.status_code == 200
    assert client.active is False
    assert caller_with(key).get("/system/clients/").status_code == 401

    with django_capture_on_commit_callbacks(execute=True):
        operator.post(f"/system/clients/{client.pk}/activate/")

    client.refresh_from_db()
    assert client.active is True
    assert caller_with(key).get("/system/clients/").status_code == 200


def test_viewer_cannot_deactivate(viewer, make_api_client):
    client, _ = make_api_client(name="target")

    response = viewer.post(f"/system/clients/{client.pk}/deactivate")

    client.refresh_from_db()
    assert response.status_code == 403
    assert client.active is True


def test_rotate_shows_the_new_key_once_and_the_old_key_stops(
    operator, make_api_client, django_capture_on_commit_callbacks
):
    client, old_key = make_api_client(name="rotating", groups=("ops-viewer",))

    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(f"/system/clients/{client.pk}/rotate", {}, format="json")

    new_key = response.json()["api_key"]
    assert response.status_code == 200
    assert new_key != old_key
    assert caller_with(new_key).get("/system/clients/").status_code == 200
    assert caller_with(old_key).get("/system/clients/").status_code == 401
    assert "api_key" not in operator.get(f"/system/clients/{client.pk}").json()


def test_rotate_with_grace_keeps_the_old_key_until_the_grace_ends(
    operator, make_api_client, time_machine
):
    time_machine.move_to(timezone.now(), tick=False)
    client, old_key = make_api_client(name="graceful", groups=("ops-viewer",))

    response = operator.post(
        f"/system/clients/{client.pk}/rotate", {"grace_seconds": 600}, format="json"
    )
    _cache.clear()

    assert response.status_code == 200
    assert caller_with(old_key).get("/system/clients/").status_code == 200
    time_machine.shift(timedelta(seconds=601))
    _cache.clear()
    assert caller_with(old_key).get("/system/clients/").status_code == 401
    assert caller_with(response.json()["api_key"]).get("/system/clients/").status_code == 200


@pytest.mark.parametrize("grace", [-1, 31 * 24 * 3600, "soon"])
def test_rotate_rejects_a_bad_grace_period(operator, make_api_client, grace):
    client, _ = make_api_client(name="r")

    response = operator.post(
        f"/system/clients/{client.pk}/rotate", {"grace_seconds": grace}, format="json"
    )

    assert response.status_code == 400
    assert "grace_seconds" in response.json()["errors"]


def test_bearer_and_x_api_key_headers_both_authenticate(make_api_client):
    _, key = make_api_client(groups=("ops-viewer",))

    assert caller_with(key, "bearer").get("/system/clients/").status_code == 200
    assert caller_with(key).get("/system/clients/").status_code == 200


def test_unknown_inactive_and_expired_keys_get_the_same_401(make_api_client, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    _, inactive_key = make_api_client(name="inactive", active=False, groups=("ops-viewer",))
    _, expired_key = make_api_client(
        name="expired", expires_at=timezone.now() + timedelta(minutes=1), groups=("ops-viewer",)
    )
    time_machine.shift(timedelta(minutes=2))
    unknown_key = keys.generate_key()

    bodies = [
        caller_with(key).get("/system/clients/")
        for key in (inactive_key, expired_key, unknown_key, "sk_nope_000")
    ]

    assert {response.status_code for response in bodies} == {401}
    assert len({response.content for response in bodies}) == 1


def test_a_key_with_a_bad_checksum_is_refused_without_touching_the_database(
    make_api_client, django_assert_num_queries, settings
):
    # The other middlewares' cached state must not expire between the two requests.
    settings.MAINTENANCE_STATE_CACHE_SECONDS = 60
    settings.RATELIMIT_RULES_CACHE_SECONDS = 60
    _, key = make_api_client(groups=("ops-viewer",))
    broken = tampered(key)
    caller_with("not-a-key").get("/system/clients/")  # warms the middlewares' own caches

    with django_assert_num_queries(0):
        response = caller_with(broken).get("/system/clients/")

    assert response.status_code == 401


def test_a_cached_key_costs_no_lookup_query(make_api_client, django_assert_num_queries, settings):
    settings.MAINTENANCE_STATE_CACHE_SECONDS = 60
    settings.RATELIMIT_RULES_CACHE_SECONDS = 60
    settings.API_KEY_CACHE_SECONDS = 60
    _, key = make_api_client(groups=("ops-viewer",))
    caller = caller_with(key)
    caller.get("/system/clients/")  # warms the key cache and writes last_used_at

    with django_assert_num_queries(3):  # the page only: count, rows, prefetched groups
        caller.get("/system/clients/")


def test_last_used_at_is_written_at_most_once_a_minute(make_api_client, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    client, key = make_api_client(groups=("ops-viewer",))
    caller = caller_with(key)

    caller.get("/system/clients/")
    client.refresh_from_db()
    first = client.last_used_at
    time_machine.shift(timedelta(seconds=30))
    caller.get("/system/clients/")
    client.refresh_from_db()

    assert first is not None
    assert client.last_used_at == first


def test_patch_updates_description_and_is_audited(operator, make_api_client):
    client, _ = make_api_client(name="patchme")

    response = operator.patch(
        f"/system/clients/{client.pk}", {"description": "Tyr service"}, format="json"
    )

    client.refresh_from_db()
    assert response.status_code == 200
    assert client.description == "Tyr service"
    log = SystemLog.objects.filter(action="clients.update").get()
    assert log.before is not None
    assert log.after is not None
    assert log.before["description"] == ""
    assert log.after["description"] == "Tyr service"


@pytest.mark.parametrize(
    ("path", "action"),
    [
        ("deactivate", "clients.deactivate"),
        ("activate", "clients.activate"),
        ("rotate", "clients.rotate"),
    ],
)
def test_each_change_writes_exactly_one_audit_row(operator, make_api_client, path, action):
    client, _ = make_api_client(name="audited")
    before = SystemLog.objects.count()

    operator.post(
        f"/system/clients/{client.pk}/{path}", {}, format="json", HTTP_X_REQUEST_ID="req-123"
    )

    assert SystemLog.objects.count() == before + 1
    row = SystemLog.objects.get(action=action)
    assert row.actor == "client:ops-operator-caller"
    assert row.actor_type == "client"
    assert row.target_id == str(client.pk)
    assert row.request_id == "req-123"
    assert row.client_ip == "127.0.0.1"


def test_create_audit_row_holds_no_secret(operator):
    operator.post("/system/clients/", SEED_CLIENT, format="json")

    stored = ApiClient.objects.get(name="TestClient")
    row = SystemLog.objects.get(action="clients.create", target_id=str(stored.pk))
    text = str(row.__dict__)
    assert "sk_test_123" not in text
    assert stored.key_hash not in text


def test_request_auth_is_the_api_client_loaded_only_when_read(
    make_api_client, django_assert_num_queries, settings
):
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from clients.authentication import ApiKeyAuthentication

    settings.API_KEY_CACHE_SECONDS = 60
    client, key = make_api_client(name="heimdall", groups=("ops-viewer",))
    request = Request(APIRequestFactory().get("/system/clients/", HTTP_X_API_KEY=key))
    ApiKeyAuthentication().authenticate(request)  # warms the key cache, writes last_used_at
    request = Request(APIRequestFactory().get("/system/clients/", HTTP_X_API_KEY=key))

    with django_assert_num_queries(0):
        user, auth = ApiKeyAuthentication().authenticate(request)  # type: ignore[misc]
    with django_assert_num_queries(1):
        name = auth.name

    assert isinstance(auth, ApiClient)
    assert auth.pk == client.pk
    assert name == "heimdall"
    assert user.username == "client:heimdall"

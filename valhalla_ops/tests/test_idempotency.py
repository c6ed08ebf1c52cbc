"""Idempotency-Key: a retried POST answers the first response again and never acts twice."""

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from clients import services as client_services
from clients.keys import hash_key
from clients.models import ApiClient
from exports.models import ExportJob
from maintenance.models import MaintenanceWindow
from notify.models import NotificationChannel, NotificationOutbox
from ratelimits.models import RateLimitRule
from retention.models import DataRetentionPolicy
from valhalla_ops import idempotency, registry
from valhalla_ops.models import IdempotencyKey, SystemLog

pytestmark = pytest.mark.django_db

KEY = "6f1c2a4e-0b7d-4d1e-9d1f-3c0a5b7e9a11"
CLIENT = {"name": "idem", "client_type": "service"}


def post(caller: APIClient, path: str, body: dict, key: str = KEY):
    return caller.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_the_same_key_and_body_answer_the_first_response_without_acting_again(operator):
    first = post(operator, "/system/clients/", CLIENT)
    second = post(operator, "/system/clients", CLIENT)  # the path is the same without its slash

    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert not first.has_header("Idempotent-Replayed")
    assert ApiClient.objects.filter(name="idem").count() == 1
    assert SystemLog.objects.filter(action="clients.create", after__name="idem").count() == 1


def test_the_same_key_with_another_body_is_a_422(operator):
    post(operator, "/system/clients/", CLIENT)

    response = post(operator, "/system/clients/", {**CLIENT, "name": "other"})

    assert response.status_code == 422
    assert response.json()["status_code"] == 422
    assert "different request" in response.json()["detail"]
    assert not ApiClient.objects.filter(name="other").exists()


def test_the_same_key_on_another_path_is_a_422(ops_admin):
    post(ops_admin, "/system/clients/", CLIENT)

    response = post(ops_admin, "/admin/ops/", {"action": "list_actions"})

    assert response.status_code == 422
    assert response.json()["ok"] is False
    assert "different request" in response.json()["error"]


def test_keys_are_per_caller(operator, make_api_client):
    _client, key = make_api_client(name="second-operator", groups=("ops-operator",))
    other = APIClient()
    other.credentials(HTTP_X_API_KEY=key)

    first = post(operator, "/system/clients/", CLIENT)
    second = post(other, "/system/clients/", {**CLIENT, "name": "idem-2"})

    assert (first.status_code, second.status_code) == (201, 201)
    assert IdempotencyKey.objects.filter(key=KEY).count() == 2


def test_a_refusal_is_replayed_too(operator):
    first = post(operator, "/system/clients/", {"name": "", "client_type": "service"})
    second = post(operator, "/system/clients/", {"name": "", "client_type": "service"})

    assert first.status_code == second.status_code == 400
    assert second.json() == first.json()


def test_without_the_header_nothing_is_kept(operator):
    operator.post("/system/clients/", CLIENT, format="json")

    assert not IdempotencyKey.objects.exists()


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there"])
def test_a_malformed_key_is_a_400(operator, key):
    response = post(operator, "/system/clients/", CLIENT, key=key)

    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["errors"]
    assert not ApiClient.objects.filter(name="idem").exists()


def test_keys_are_kept_24_hours_then_purged_by_the_worker(operator):
    post(operator, "/system/clients/", CLIENT)
    later = timezone.now() + timedelta(hours=24, seconds=1)

    step = registry.worker_steps.get("idempotency_keys")
    assert step is idempotency.purge_expired_keys

    with time_machine.travel(later - timedelta(seconds=2), tick=False):
        kept = step()
        still = post(operator, "/system/clients/", {**CLIENT, "name": "x"})
    with time_machine.travel(later, tick=False):
        purged = step()
        fresh = post(operator, "/system/clients/", {**CLIENT, "name": "x"})

    assert (kept, purged) == (0, 1)
    assert still.status_code == 422
    assert fresh.status_code == 201


def test_an_expired_key_is_free_again_before_the_worker_runs(operator):
    post(operator, "/system/clients/", CLIENT)

    with time_machine.travel(timezone.now() + timedelta(hours=25), tick=False):
        response = post(operator, "/system/clients/", {**CLIENT, "name": "later"})

    assert response.status_code == 201
    assert IdempotencyKey.objects.get().path == "/system/clients/"


def test_a_rotation_retried_after_a_timeout_does_not_mint_a_second_key(operator, make_api_client):
    client, _old = make_api_client(name="tyr")
    path = f"/system/clients/{client.pk}/rotate"

    first = post(operator, path, {"grace_seconds": 60})
    retried = post(operator, path, {"grace_seconds": 60})

    client.refresh_from_db()
    new_key = first.json()["api_key"]
    assert retried.json()["api_key"] == new_key
    assert client.key_hash == hash_key(new_key)
    assert SystemLog.objects.filter(action="clients.rotate", target_id=str(client.pk)).count() == 1
    stored = IdempotencyKey.objects.get()
    assert new_key not in stored.body  # sealed at rest, like webhook secrets


def test_admin_ops_replays_an_action_without_running_it_again(ops_admin):
    body = {"action": "set_maintenance_mode", "params": {"mode": "read_only", "reason": "drill"}}

    first = post(ops_admin, "/admin/ops/", body)
    second = post(ops_admin, "/admin/ops/", body)

    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert SystemLog.objects.filter(action="maintenance.set_mode").count() == 1


def test_a_server_error_is_not_kept_so_a_retry_acts(operator, monkeypatch):
    real = client_services.create_client
    calls = []

    def flaky(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database hiccup")
        return real(**kwargs)

    monkeypatch.setattr(client_services, "create_client", flaky)
    operator.raise_request_exception = False

    first = post(operator, "/system/clients/", CLIENT)
    second = post(operator, "/system/clients/", CLIENT)

    assert (first.status_code, second.status_code) == (500, 201)
    assert ApiClient.objects.filter(name="idem").count() == 1


@pytest.fixture
def channel(db) -> NotificationChannel:
    from notify.services import create_channel
    from valhalla_ops.principals import SYSTEM

    made, _secret = create_channel(
        actor=SYSTEM, name="existing", channel_type="email", target="owner@example.com"
    )
    return made


CREATES = [
    ("/system/clients/", lambda ctx: CLIENT, ApiClient),
    (
        "/system/ratelimits/rules",
        lambda ctx: {"scope": "ip", "key": "192.168.1.1", "max_requests": 100},
        RateLimitRule,
    ),
    (
        "/system/maintenance/windows",
        lambda ctx: {
            "starts_at": "2030-01-01T02:00:00Z",
            "ends_at": "2030-01-01T04:00:00Z",
            "description": "Database upgrade",
        },
        MaintenanceWindow,
    ),
    (
        "/system/notify/channels",
        lambda ctx: {"name": "ops", "channel_type": "email", "target": "ops@example.com"},
        NotificationChannel,
    ),
    (
        "/system/notify/",
        lambda ctx: {"channel_id": ctx.pk, "subject": "Alert", "body": "System updated"},
        NotificationOutbox,
    ),
    (
        "/system/exports/",
        lambda ctx: {
            "job_type": "audit_log_export",
            "filter_params": {"start_date": "2024-01-01", "end_date": "2024-01-31"},
            "requested_by": "admin@example.com",
        },
        ExportJob,
    ),
    (
        "/system/retention/",
        lambda ctx: {"category": "audit_logs", "days_to_keep": 30},
        DataRetentionPolicy,
    ),
]


@pytest.mark.parametrize(("path", "body", "model"), CREATES, ids=[c[0] for c in CREATES])
def test_every_create_endpoint_honours_the_key(ops_admin, channel, path, body, model):
    before = model.objects.count()

    first = post(ops_admin, path, body(channel))
    second = post(ops_admin, path, body(channel))

    assert first.status_code == 201, first.json()
    assert (second.status_code, second.json()) == (201, first.json())
    assert model.objects.count() == before + 1


def test_the_schema_documents_the_header(ops_admin):
    schema = ops_admin.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    for path, _body, _model in CREATES:
        operation = schema["paths"][path.rstrip("/") + "/"]["post"]
        names = [parameter["name"] for parameter in operation.get("parameters", [])]
        assert idempotency.HEADER in names, path


# --- concurrent duplicates act once (PostgreSQL: each thread has its own connection) -------

DUPLICATES = 5


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_act_once(postgres, make_api_client, monkeypatch):
    _client, key = make_api_client(name="racer", groups=("ops-operator",))
    real = client_services.create_client
    inside = threading.Event()
    calls: list[int] = []

    def slow_create(**kwargs):
        calls.append(1)
        inside.set()
        # Hold the key until every duplicate is waiting on it (or give up after 30 s).
        deadline = timezone.now() + timedelta(seconds=30)
        while timezone.now() < deadline and waiting_on_locks_elsewhere() < DUPLICATES - 1:
            threading.Event().wait(0.02)
        return real(**kwargs)

    monkeypatch.setattr(client_services, "create_client", slow_create)
    responses: list = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            caller = APIClient()
            caller.credentials(HTTP_X_API_KEY=key)
            responses.append(post(caller, "/system/clients/", CLIENT))
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    first = threading.Thread(target=call)
    first.start()
    assert inside.wait(30)
    others = [threading.Thread(target=call) for _ in range(DUPLICATES - 1)]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join(timeout=120)

    assert errors == []
    assert len(calls) == 1
    assert [r.status_code for r in responses] == [201] * DUPLICATES
    assert len({r.content for r in responses}) == 1
    assert sum(r.has_header("Idempotent-Replayed") for r in responses) == DUPLICATES - 1
    assert ApiClient.objects.filter(name="idem").count() == 1


def waiting_on_locks_elsewhere() -> int:
    """Lock waits seen from a fresh connection (the caller's own is inside its transaction)."""
    from django.db import connections

    probe = connections.create_connection("default")
    try:
        with probe.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return int(cursor.fetchone()[0])
    finally:
        probe.close()

import threading

import pytest
from django.db import IntegrityError, connection, transaction

from retention import services
from retention.models import DataRetentionPolicy
from valhalla_ops.models import SystemLog
from valhalla_ops.principals import SYSTEM

pytestmark = pytest.mark.django_db

SEED_CREATE = {
    "category": "audit_logs",
    "days_to_keep": 365,
    "description": "Keep audit logs for 1 year",
}
SEED_UPDATE = {"category": "audit_logs", "days_to_keep": 730, "description": "Extended to 2 years"}


def audit_rows():
    return SystemLog.objects.filter(target_type="retention.dataretentionpolicy").order_by("id")


def test_seed_create(operator):
    response = operator.post("/system/retention/", SEED_CREATE, format="json")

    assert response.status_code == 201, response.data
    policy = DataRetentionPolicy.objects.get(category="audit_logs")
    assert policy.days_to_keep == 365
    assert policy.enabled is True
    assert policy.description == "Keep audit logs for 1 year"
    assert response.data["category"] == "audit_logs"
    assert response.data["enabled"] is True


def test_seed_update_is_idempotent_upsert(operator):
    operator.post("/system/retention/", SEED_CREATE, format="json")

    first = operator.post("/system/retention/", SEED_UPDATE, format="json")
    again = operator.post("/system/retention", SEED_UPDATE, format="json")

    assert first.status_code == 200
    assert again.status_code == 200
    assert DataRetentionPolicy.objects.count() == 1
    policy = DataRetentionPolicy.objects.get()
    assert (policy.days_to_keep, policy.description) == (730, "Extended to 2 years")
    assert [row.action for row in audit_rows()] == ["retention.create", "retention.update"]


def test_update_audit_row_has_before_and_after(operator):
    operator.post("/system/retention/", SEED_CREATE, format="json")

    operator.post("/system/retention/", SEED_UPDATE, format="json")

    row = audit_rows().last()
    assert row.before["days_to_keep"] == 365
    assert row.after["days_to_keep"] == 730
    assert row.actor == "client:ops-operator-caller"


def test_update_keeps_fields_left_out(operator, make_policy):
    make_policy("audit_logs", 30, enabled=False, description="kept")

    response = operator.post(
        "/system/retention/", {"category": "audit_logs", "days_to_keep": 60}, format="json"
    )

    assert response.status_code == 200
    policy = DataRetentionPolicy.objects.get()
    assert (policy.days_to_keep, policy.enabled, policy.description) == (60, False, "kept")


def test_upsert_toggles_enabled(operator, make_policy):
    make_policy("audit_logs", 30)
    body = {"category": "audit_logs", "days_to_keep": 30, "enabled": False}

    response = operator.post("/system/retention/", body, format="json")

    assert response.status_code == 200
    assert DataRetentionPolicy.objects.get().enabled is False


def test_create_disabled(operator):
    body = {"category": "admin_log", "days_to_keep": 90, "enabled": False}

    response = operator.post("/system/retention/", body, format="json")

    assert response.status_code == 201
    assert DataRetentionPolicy.objects.get().enabled is False


def test_unknown_category_lists_the_registered_ones(operator):
    body = {"category": "temp_data", "days_to_keep": 7}

    response = operator.post("/system/retention/", body, format="json")

    assert response.status_code == 400
    message = response.data["errors"]["category"][0]
    assert message.startswith("Unknown category 'temp_data'. Registered: ")
    for name in ("admin_log", "audit_logs", "export_jobs", "purge_runs"):
        assert name in message
    assert not DataRetentionPolicy.objects.exists()


@pytest.mark.parametrize("days", [0, -1, "abc", 1.5, None, True, 10**9])
def test_days_to_keep_must_be_a_positive_integer(operator, days):
    body = {"category": "audit_logs", "days_to_keep": days}

    response = operator.post("/system/retention/", body, format="json")

    assert response.status_code == 400
    assert "days_to_keep" in response.data["errors"]
    assert not DataRetentionPolicy.objects.exists()


@pytest.mark.parametrize("missing", ["category", "days_to_keep"])
def test_missing_field(operator, missing):
    body = {key: value for key, value in SEED_CREATE.items() if key != missing}

    response = operator.post("/system/retention/", body, format="json")

    assert response.status_code == 400
    assert response.data["errors"][missing] == ["This field is required."]


def test_bad_enabled(operator):
    body = {"category": "audit_logs", "days_to_keep": 5, "enabled": "sometimes"}

    response = operator.post("/system/retention/", body, format="json")

    assert response.status_code == 400
    assert "enabled" in response.data["errors"]


def test_create_needs_credentials(api_client):
    assert api_client.post("/system/retention/", SEED_CREATE, format="json").status_code == 401


def test_viewer_cannot_write(viewer):
    response = viewer.post("/system/retention/", SEED_CREATE, format="json")

    assert response.status_code == 403
    assert not DataRetentionPolicy.objects.exists()


def test_list(viewer, make_policy):
    make_policy("audit_logs", 365)
    make_policy("admin_log", 90, enabled=False)

    response = viewer.get("/system/retention/")

    assert response.status_code == 200
    assert response.data["count"] == 2
    assert [row["category"] for row in response.data["results"]] == ["admin_log", "audit_logs"]


def test_list_filters_and_paginates(viewer, make_policy):
    make_policy("audit_logs", 365)
    make_policy("admin_log", 90, enabled=False)
    make_policy("export_jobs", 30)

    enabled = viewer.get("/system/retention/?enabled=true")
    page = viewer.get("/system/retention/?limit=1&offset=1")

    assert [row["category"] for row in enabled.data["results"]] == ["audit_logs", "export_jobs"]
    assert page.data["count"] == 3
    assert [row["category"] for row in page.data["results"]] == ["audit_logs"]


def test_list_needs_credentials(api_client):
    assert api_client.get("/system/retention/").status_code == 401


def test_list_needs_permission(nobody):
    assert nobody.get("/system/retention/").status_code == 403


def test_get_by_category(viewer, make_policy):
    make_policy("audit_logs", 365, description="Keep audit logs for 1 year")

    response = viewer.get("/system/retention/audit_logs")

    assert response.status_code == 200
    assert response.data["days_to_keep"] == 365
    assert viewer.get("/system/retention/audit_logs/").status_code == 200


@pytest.mark.parametrize("category", ["export_jobs", "nonsense", "audit%00logs"])
def test_get_without_policy_is_404(viewer, category):
    response = viewer.get(f"/system/retention/{category}")

    assert response.status_code == 404
    assert response.json()["status_code"] == 404


def test_runs_of_a_category(viewer, make_policy):
    from retention import purger

    policy = make_policy("admin_log", 30)
    purger.purge_policy(policy=policy, actor=SYSTEM)

    response = viewer.get("/system/retention/admin_log/runs")

    assert response.status_code == 200
    assert response.data["count"] == 1
    assert response.data["results"][0]["status"] == "completed"


def test_database_refuses_days_below_one(make_policy):
    policy = make_policy()

    with pytest.raises(IntegrityError), transaction.atomic():
        DataRetentionPolicy.objects.filter(pk=policy.pk).update(days_to_keep=0)


def test_database_refuses_a_second_policy_per_category(make_policy):
    make_policy("audit_logs")

    with pytest.raises(IntegrityError), transaction.atomic():
        make_policy("audit_logs")


def test_delete_policy_is_audited(make_policy):
    policy = make_policy()

    services.delete_policy(actor=SYSTEM, policy=policy)

    assert not DataRetentionPolicy.objects.exists()
    assert audit_rows().get().action == "retention.delete"


@pytest.mark.django_db(transaction=True)
def test_concurrent_upserts_create_one_policy(postgres):
    barrier = threading.Barrier(4)
    results: list[bool] = []
    errors: list[Exception] = []

    def upsert(days: int) -> None:
        barrier.wait()
        try:
            _policy, created = services.upsert_policy(
                actor=SYSTEM, category="audit_logs", days_to_keep=days
            )
            results.append(created)
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=upsert, args=(days,)) for days in (10, 20, 30, 40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(results) == [False, False, False, True]
    assert DataRetentionPolicy.objects.count() == 1

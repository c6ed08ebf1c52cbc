import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission

from valhalla_ops import registry

ROOT = Path(__file__).resolve().parents[2]


def test_healthz_needs_no_database(api_client):
    # No django_db mark: any database access in this request would raise.
    response = api_client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_each_part(api_client):
    response = api_client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"]["database"] == "ok"
    assert response.json()["checks"]["cache"] == "ok"


@pytest.mark.django_db
def test_readyz_names_the_failing_part(api_client, monkeypatch):
    def broken() -> None:
        raise ConnectionError("down")

    monkeypatch.setitem(registry.readiness_checks._entries, "broker", broken)

    response = api_client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["failing"] == ["broker"]


def run_with(env: dict[str, str], code: str) -> subprocess.CompletedProcess:
    script = (
        "import django; django.setup(); from django.test import Client; "
        f"c = Client(raise_request_exception=False); {code}"
    )
    base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={
            **base,
            "DJANGO_SETTINGS_MODULE": "valhalla_ops.settings",
            "ALLOWED_HOSTS": "testserver",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_health_endpoints_with_the_database_down_answer_503_not_500():
    down = {"DATABASE_URL": "postgres://postgres@127.0.0.1:1/valhalla_ops", "DB_CONN_MAX_AGE": "0"}

    result = run_with(
        down,
        "r = c.get('/readyz'); h = c.get('/healthz'); print(r.status_code, r.json()['failing'], h.status_code)",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0] == "503 ['database'] 200"


def test_readyz_with_redis_down_names_the_cache():
    result = run_with(
        {"REDIS_URL": "redis://127.0.0.1:1/0"},
        "r = c.get('/readyz'); print(r.status_code, r.json()['failing'])",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "503 ['cache']"


@pytest.mark.django_db
def test_metrics_for_allowed_ip_and_staff_only(client, django_user_model, settings):
    allowed = client.get("/metrics")
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    refused = client.get("/metrics")
    staff = django_user_model.objects.create(username="ops", is_staff=True)
    client.force_login(staff)
    as_staff = client.get("/metrics")

    assert allowed.status_code == 200
    assert "valhalla_ratelimit_decisions_total" in allowed.content.decode()
    assert refused.status_code == 403
    assert as_staff.status_code == 200


@pytest.mark.django_db
def test_default_groups_hold_their_roles():
    def codenames(group: str) -> set[str]:
        return set(Permission.objects.filter(group__name=group).values_list("codename", flat=True))

    viewer, operator, admin = (
        codenames("ops-viewer"),
        codenames("ops-operator"),
        codenames("ops-admin"),
    )

    assert {"view_apiclient", "view_systemlog"} <= viewer
    assert not any(code.startswith(("add_", "change_", "delete_")) for code in viewer)
    assert {"add_apiclient", "change_apiclient"} <= operator
    assert "run_admin_ops" not in operator
    assert operator <= admin
    assert "run_admin_ops" in admin


@pytest.mark.django_db
def test_metrics_export_queue_depths_and_the_mode(client, set_maintenance_mode):
    from notify.models import NotificationChannel, NotificationOutbox

    channel = NotificationChannel.objects.create(
        name="ops", channel_type="email", target="ops@example.com"
    )
    NotificationOutbox.objects.create(channel=channel, subject="Alert", body="", payload={})
    set_maintenance_mode("read_only")

    text = client.get("/metrics").content.decode()

    assert 'valhalla_outbox_messages{status="pending"} 1.0' in text
    assert 'valhalla_outbox_messages{status="failed"} 0.0' in text
    assert 'valhalla_export_jobs{status="running"} 0.0' in text
    assert 'valhalla_maintenance_mode{mode="read_only"} 1.0' in text
    assert 'valhalla_maintenance_mode{mode="normal"} 0.0' in text


@pytest.mark.django_db
def test_a_broken_gauge_does_not_hide_the_others(client, monkeypatch):
    def broken() -> list:
        raise RuntimeError("down")

    monkeypatch.setitem(
        registry.gauges._entries, "broken", registry.GaugeSource("x", ("a",), broken)
    )

    response = client.get("/metrics")

    assert response.status_code == 200
    assert "valhalla_broken" not in response.content.decode()
    assert "valhalla_export_jobs" in response.content.decode()

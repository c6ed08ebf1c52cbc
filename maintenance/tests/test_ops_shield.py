"""Admin ops in a lockdown: the view decides from the request DRF authenticated and parsed.

The shield never reads a body: an anonymous hostile body is DRF's 401, and the action that
is judged is the action that runs, whatever the body's encoding.
"""

import pytest
from rest_framework.test import APIClient

from maintenance.tests.test_middleware import READ_ONLY_BODY
from valhalla_ops.models import SystemLog

pytestmark = pytest.mark.django_db

# Valid JSON saying list_actions; as a form, its `action` field says snapshot_ratelimits.
AMBIGUOUS = '{"action": "list_actions", "params": {"x": "&action=snapshot_ratelimits&"}}'


@pytest.mark.parametrize("mode", ["normal", "read_only", "maintenance"])
def test_anonymous_deeply_nested_body_is_a_401_not_a_500(set_maintenance_mode, mode):
    set_maintenance_mode(mode)

    response = APIClient().post("/admin/ops/", "[" * 100_000, content_type="application/json")

    assert response.status_code == 401


@pytest.mark.parametrize(
    "body",
    ["[" * 100_000, '{"action": "list_actions"}', "{not json"],
    ids=["deeply-nested", "normal", "broken"],
)
def test_anonymous_ops_calls_get_the_same_401_whatever_the_body(set_maintenance_mode, body):
    set_maintenance_mode("read_only")

    response = APIClient().post("/admin/ops/", body, content_type="application/json")

    assert response.status_code == 401


def test_a_form_body_cannot_smuggle_a_mutating_action(ops_admin, set_maintenance_mode):
    set_maintenance_mode("read_only")

    response = ops_admin.post(
        "/admin/ops/", AMBIGUOUS, content_type="application/x-www-form-urlencoded"
    )

    # The API reads JSON only: a form body is refused before any action is looked at.
    assert response.status_code == 415
    assert not SystemLog.objects.filter(action__startswith="admin_ops.").exists()
    assert not SystemLog.objects.filter(action="ratelimits.snapshot").exists()


def test_the_same_body_as_json_runs_the_read_action(ops_admin, set_maintenance_mode):
    set_maintenance_mode("read_only")

    response = ops_admin.post("/admin/ops/", AMBIGUOUS, content_type="application/json")

    assert response.status_code == 200
    assert response.json()["action"] == "list_actions"


@pytest.mark.parametrize("action", ["snapshot_ratelimits"])
def test_mutating_actions_get_the_seed_503_with_retry_after(
    ops_admin, set_maintenance_mode, action
):
    set_maintenance_mode("read_only")

    response = ops_admin.post("/admin/ops/", {"action": action}, format="json")

    assert response.status_code == 503
    assert response.json() == READ_ONLY_BODY
    assert response["Retry-After"] == "300"


def test_the_mode_switch_runs_in_maintenance_and_is_audited(ops_admin, set_maintenance_mode):
    set_maintenance_mode("maintenance")

    response = ops_admin.post(
        "/admin/ops/",
        {"action": "set_maintenance_mode", "params": {"mode": "normal", "reason": "done"}},
        format="json",
    )

    assert response.status_code == 200
    log = SystemLog.objects.filter(action="maintenance.set_mode").latest("id")
    assert log.after is not None
    assert log.after["mode"] == "normal"

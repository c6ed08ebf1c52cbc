"""`manage.py ops`, and the plain-words refusals every project command shares."""

import json
from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.management import CommandError, call_command, get_commands, load_command_class
from rest_framework.exceptions import ValidationError

from maintenance.models import MaintenanceState
from valhalla_ops.commands import OpsCommand, plain_error
from valhalla_ops.exceptions import ServiceError
from valhalla_ops.models import SystemLog

pytestmark = pytest.mark.django_db

PROJECT_APPS = {
    "valhalla_ops",
    "clients",
    "maintenance",
    "ratelimits",
    "notify",
    "exports",
    "retention",
}


def ops(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("ops", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def viewer_user(django_user_model):
    user = django_user_model.objects.create(username="vera")
    user.groups.add(Group.objects.get(name="ops-viewer"))
    return user


@pytest.fixture
def admin_user_in_group(django_user_model):
    user = django_user_model.objects.create(username="odin")
    user.groups.add(Group.objects.get(name="ops-admin"))
    return user


def test_ops_runs_an_action_and_audits_it_as_the_endpoint_does():
    out, _err = ops("get_maintenance_state")

    assert "mode: normal" in out.splitlines()
    log = SystemLog.objects.get(action="admin_ops.get_maintenance_state")
    assert log.actor == "manage.py ops"


def test_ops_json_has_the_endpoint_shape():
    out, _err = ops("dashboard", "--json")

    body = json.loads(out)
    assert set(body) == {"ok", "action", "data", "error"}
    assert body["ok"] is True
    assert body["action"] == "dashboard"
    assert body["data"]["maintenance"]["rows"][0]["value"] == "normal"


def test_ops_params_are_read_as_json_when_they_parse(admin_user_in_group):
    out, _err = ops(
        "set_maintenance_mode",
        "--param",
        "mode=read_only",
        "--param",
        "reason=disk full",
        "--as",
        "odin",
        "--json",
    )

    assert json.loads(out)["data"]["mode"] == "read_only"
    state = MaintenanceState.objects.get()
    assert (state.mode, state.reason, state.changed_by) == ("read_only", "disk full", "odin")
    assert SystemLog.objects.get(action="maintenance.set_mode").actor == "odin"


def test_ops_typed_params_get_json_values():
    out, _err = ops(
        "retry_failed_notifications", "--param", "dry_run=true", "--param", "limit=5", "--json"
    )

    assert json.loads(out)["data"] == {"matched": 0, "retried": 0, "ids": [], "dry_run": True}


def test_ops_as_a_viewer_has_the_viewers_permissions(viewer_user):
    out, _err = ops("list_actions", "--as", "vera", "--json")
    names = {row["action"] for row in json.loads(out)["data"]}

    with pytest.raises(CommandError, match=r"needs the permission valhalla_ops\.run_admin_ops"):
        ops("security_snapshot", "--as", "vera")

    assert names == {"list_actions", "get_maintenance_state", "dashboard", "retention_preview"}
    assert SystemLog.objects.filter(action="admin_ops.security_snapshot").count() == 0


def test_a_refusal_with_json_prints_the_endpoint_shape_too(viewer_user):
    out = StringIO()

    with pytest.raises(CommandError):
        call_command("ops", "security_snapshot", "--as", "vera", "--json", stdout=out)

    body = json.loads(out.getvalue())
    assert body["ok"] is False
    assert body["data"] is None
    assert "needs the permission" in body["error"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["launch_missiles"], "Unknown action 'launch_missiles'. Known: "),
        (["dashboard", "--as", "nobody-here"], "--as 'nobody-here': no active user"),
        (["dashboard", "--param", "oops"], "--param 'oops': write KEY=VALUE."),
        (
            ["set_maintenance_mode", "--param", "mode=panic"],
            'mode: Unknown mode "panic". Valid modes: normal, read_only, maintenance.',
        ),
    ],
)
def test_ops_mistakes_are_command_errors(args, message):
    with pytest.raises(CommandError) as refused:
        ops(*args)

    assert message in str(refused.value)


def test_ops_list_actions_reads_well_without_json():
    out, _err = ops("list_actions")

    lines = out.splitlines()
    assert len(lines) >= 8
    assert all(line.startswith('{"action": ') for line in lines)


# --- one helper for every command's refusals ----------------------------------------------


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (
            ServiceError("A client named 'nogroup' already exists.", field="name"),
            "name: A client named 'nogroup' already exists.",
        ),
        (ValidationError({"a": ["one."], "b": ["two."]}), "a: one.; b: two."),
        (ValidationError(["whole body."]), "whole body."),
        (ServiceError("Plain refusal."), "Plain refusal."),
        (DjangoValidationError({"days": ["Too many."]}), "days: Too many."),
        (DjangoValidationError("Model-level refusal."), "Model-level refusal."),
    ],
)
def test_plain_error_reads_as_sentences(error, text):
    assert plain_error(error) == text


def test_every_project_command_uses_the_plain_error_helper():
    ours = {name: app for name, app in get_commands().items() if app in PROJECT_APPS}

    assert {"ops", "activate_api_client", "purge_expired", "maintenance_mode"} <= set(ours)
    for name, app in ours.items():
        assert isinstance(load_command_class(app, name), OpsCommand), name

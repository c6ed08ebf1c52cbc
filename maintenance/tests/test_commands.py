import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from maintenance.models import MaintenanceState
from valhalla_ops.models import SystemLog

pytestmark = pytest.mark.django_db


def test_show_without_a_row_says_normal_and_creates_nothing():
    out = StringIO()

    call_command("maintenance_mode", stdout=out)

    assert "mode: normal" in out.getvalue()
    assert not MaintenanceState.objects.exists()


def test_switch_is_audited_as_the_command():
    out = StringIO()

    call_command("maintenance_mode", "read_only", "--reason", "restore", stdout=out)

    assert "maintenance mode is now read_only" in out.getvalue()
    stored = MaintenanceState.objects.get()
    assert (stored.mode, stored.reason) == ("read_only", "restore")
    log = SystemLog.objects.get(action="maintenance.set_mode")
    assert log.actor == "manage.py maintenance_mode"


def test_unknown_mode_is_an_operator_error():
    with pytest.raises(CommandError, match="Valid modes: normal, read_only, maintenance"):
        call_command("maintenance_mode", "panic")

    assert not MaintenanceState.objects.exists()


def test_show_as_json():
    call_command("maintenance_mode", "read_only", "--reason", "restore", stdout=StringIO())
    out = StringIO()

    call_command("maintenance_mode", "--json", stdout=out)

    data = json.loads(out.getvalue())
    assert data["mode"] == "read_only"
    assert data["reason"] == "restore"
    assert data["changed_by"] == "manage.py maintenance_mode"
    assert data["since"]


def test_switch_as_json_prints_the_new_state():
    out = StringIO()

    call_command("maintenance_mode", "maintenance", "--json", stdout=out)

    assert json.loads(out.getvalue())["mode"] == "maintenance"


def test_setting_the_mode_it_already_has_is_warned_and_changes_nothing():
    call_command("maintenance_mode", "read_only", "--reason", "first", stdout=StringIO())
    out, err = StringIO(), StringIO()

    call_command("maintenance_mode", "read_only", "--reason", "again", stdout=out, stderr=err)

    assert "already read_only; nothing changed" in err.getvalue()
    assert MaintenanceState.objects.get().reason == "first"
    assert SystemLog.objects.filter(action="maintenance.set_mode").count() == 1

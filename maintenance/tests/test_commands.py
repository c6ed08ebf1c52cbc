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

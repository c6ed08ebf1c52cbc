"""What maintenance adds to the ops console: admin ops actions, snapshot and dashboard sections."""

from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.timesince import timesince
from rest_framework.exceptions import PermissionDenied

from maintenance import services, state
from maintenance.models import MaintenanceState, MaintenanceWindow, Mode
from maintenance.serializers import MaintenanceStateSetSerializer
from valhalla_ops.audit import Actor
from valhalla_ops.ops import ALLOW, RUN_ADMIN_OPS, VIEW_ADMIN_OPS, OpsAction
from valhalla_ops.registry import DashboardSection

CHANGE_PERM = "maintenance.change_maintenancestate"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _window_data(window: MaintenanceWindow | None) -> dict[str, Any] | None:
    if window is None:
        return None
    return {
        "id": window.pk,
        "starts_at": window.starts_at.isoformat(),
        "ends_at": window.ends_at.isoformat(),
        "mode": window.mode,
        "description": window.description,
    }


def state_data(state: MaintenanceState) -> dict[str, Any]:
    """The state with its windows, as JSON-able data (read from the database)."""
    now = timezone.now()
    return {
        "mode": state.mode,
        "reason": state.reason,
        "updated_at": _iso(state.updated_at),
        "since": _iso(state.since),
        "changed_by": state.changed_by,
        "window_id": state.window_id,
        "current_window": _window_data(
            MaintenanceWindow.objects.covering(now).order_by("-ends_at").first()
        ),
        "next_window": _window_data(MaintenanceWindow.objects.upcoming(now).first()),
    }


def get_maintenance_state(*, actor: Actor, params: dict[str, Any]) -> dict[str, Any]:
    return state_data(services.read_state())


def set_maintenance_mode(*, actor: Actor, params: dict[str, Any]) -> dict[str, Any]:
    """Params {"mode", "reason"}; the caller also needs the permission to change the state."""
    if not actor.has_perm(CHANGE_PERM):
        raise PermissionDenied(f"Changing the maintenance mode needs the {CHANGE_PERM} permission.")
    serializer = MaintenanceStateSetSerializer(data=params)
    serializer.is_valid(raise_exception=True)
    return state_data(services.set_mode(actor=actor, **serializer.validated_data))


ACTIONS = {
    "get_maintenance_state": OpsAction(
        get_maintenance_state,
        "The maintenance mode, its reason, and the current/next window.",
        permission=VIEW_ADMIN_OPS,
    ),
    "set_maintenance_mode": OpsAction(
        set_maintenance_mode,
        'Switch the maintenance mode: params {"mode": "normal|read_only|maintenance", "reason"}.',
        mutating=True,
        permission=(RUN_ADMIN_OPS, CHANGE_PERM),
        lockdown=ALLOW,  # whoever may change the mode may always change it back
    ),
}


def snapshot_section() -> dict[str, Any]:
    state = services.read_state()
    data = state_data(state)
    seconds = int((timezone.now() - state.since).total_seconds()) if state.since else 0
    not_normal_for = seconds if data["mode"] != Mode.NORMAL else 0
    threshold = settings.MAINTENANCE_ALERT_AFTER
    return {
        **data,
        "not_normal_for_seconds": not_normal_for,
        "alert": bool(threshold) and not_normal_for > threshold,
        "upcoming_windows": MaintenanceWindow.objects.upcoming(timezone.now()).count(),
    }


def dashboard_rows() -> list[tuple[str, Any, str]]:
    state = services.read_state()
    now = timezone.now()
    normal = state.mode == Mode.NORMAL
    level = "ok" if normal else "warning"
    upcoming = MaintenanceWindow.objects.upcoming(now).first()
    since = f"{timesince(state.since, now)} ago" if state.since else "-"
    return [
        ("mode", state.mode, level),
        ("reason", state.reason or "-", "info"),
        ("since", since, level),
        ("changed by", state.changed_by or "-", "info"),
        ("next window", _describe(upcoming) if upcoming else "none scheduled", "info"),
    ]


def _describe(window: MaintenanceWindow) -> str:
    when = timezone.localtime(window.starts_at).strftime("%Y-%m-%d %H:%M")
    return f"{when}, {timesince(window.starts_at, window.ends_at)}, {window.mode}"


DASHBOARD = DashboardSection("Maintenance", dashboard_rows, order=50)


def mode_gauge() -> list[tuple[tuple[str, ...], float]]:
    """1 for the mode in force (from the cached state), 0 for the others; `unknown` if unreadable."""
    try:
        mode = state.current_mode()
    except state.StateUnavailable:
        mode = "unknown"
    return [((name,), 1.0 if name == mode else 0.0) for name in [*Mode.values, "unknown"]]

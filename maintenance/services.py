"""Every change to the maintenance state and windows: atomic, audited, published on commit."""

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from maintenance.models import MaintenanceState, MaintenanceWindow, Mode, WindowMode
from maintenance.state import next_version, publish_on_commit
from notify.services import emit_event
from valhalla_ops.audit import Actor, describe_actor, record_change
from valhalla_ops.exceptions import ServiceError

VALID_MODES = ", ".join(Mode.values)
WINDOW_FIELDS = {"starts_at", "ends_at", "description", "active", "mode"}
STATE_FIELDS = [
    "mode",
    "reason",
    "changed_by",
    "window",
    "since",
    "alerted_at",
    "version",
    "updated_at",
]


def unknown_mode_message(mode: object) -> str:
    return f"Unknown mode {mode!r}. Valid modes: {VALID_MODES}."


def state_snapshot(state: MaintenanceState) -> dict[str, Any]:
    """The audited view of the state."""
    return {
        "mode": state.mode,
        "reason": state.reason,
        "changed_by": state.changed_by,
        "window_id": state.window_id,
    }


def window_snapshot(window: MaintenanceWindow) -> dict[str, Any]:
    return {
        "starts_at": window.starts_at.isoformat(),
        "ends_at": window.ends_at.isoformat(),
        "mode": window.mode,
        "active": window.active,
        "description": window.description,
    }


def read_state() -> MaintenanceState:
    """The stored state, or an unsaved `normal` one when there is no row: reading creates nothing."""
    state = MaintenanceState.objects.filter(pk=MaintenanceState.SINGLETON_ID).first()
    return state or MaintenanceState(mode=Mode.NORMAL)


def locked_state() -> MaintenanceState:
    """The singleton row, created if missing, locked until the transaction ends.

    The upsert never fails on a concurrent first insert (ON CONFLICT DO NOTHING), and the
    lock serialises every change of the mode.
    """
    MaintenanceState.objects.bulk_create([MaintenanceState()], ignore_conflicts=True)
    return MaintenanceState.objects.select_for_update().get(pk=MaintenanceState.SINGLETON_ID)


def bump_version() -> None:
    """A new version of the state (its windows are part of it), published on commit."""
    state = locked_state()
    state.version = next_version(state.version)
    state.save(update_fields=["version"])
    publish_on_commit()


@transaction.atomic
def set_mode(
    *,
    actor: Actor,
    mode: str,
    reason: str = "",
    window: MaintenanceWindow | None = None,
    context_data: dict[str, Any] | None = None,
) -> MaintenanceState:
    """Switch the system's mode; `window` is set when a maintenance window did it."""
    if mode not in Mode.values:
        raise ServiceError(unknown_mode_message(mode), field="mode")
    state = locked_state()
    before = state_snapshot(state)
    now = timezone.now()
    if state.mode != mode or state.since is None:
        state.since = now
    state.mode, state.reason, state.window = mode, reason, window
    state.changed_by = describe_actor(actor)[2][:150]
    state.alerted_at = None
    state.version = next_version(state.version)
    state.save(update_fields=STATE_FIELDS)
    record_change(
        actor=actor,
        action="maintenance.set_mode",
        target=state,
        before=before,
        after=state_snapshot(state),
        message=f"Maintenance mode set to {mode}",
        context_data={"mode": mode, "reason": reason, **(context_data or {})},
    )
    if before["mode"] != mode:
        _emit_mode_changed(state, previous=before["mode"], moment=now)
    publish_on_commit()
    return state


def _emit_mode_changed(state: MaintenanceState, *, previous: str, moment: datetime) -> None:
    payload = {
        "mode": state.mode,
        "previous_mode": previous,
        "reason": state.reason,
        "changed_by": state.changed_by,
        "window_id": state.window_id,
        "changed_at": moment.isoformat(),
    }
    subject = f"Maintenance mode changed: {previous} -> {state.mode}"
    emit_event(topic="maintenance.mode_changed", payload=payload, subject=subject)


def _check_span(starts_at: datetime, ends_at: datetime) -> None:
    if ends_at <= starts_at:
        raise ServiceError("ends_at must be after starts_at.", field="ends_at")


@transaction.atomic
def create_window(
    *,
    actor: Actor,
    starts_at: datetime,
    ends_at: datetime,
    description: str = "",
    active: bool = True,
    mode: str = WindowMode.MAINTENANCE,
) -> MaintenanceWindow:
    _check_span(starts_at, ends_at)
    if mode not in WindowMode.values:
        raise ServiceError(
            f"A window switches to one of: {', '.join(WindowMode.values)}.", field="mode"
        )
    window = MaintenanceWindow.objects.create(
        starts_at=starts_at, ends_at=ends_at, description=description, active=active, mode=mode
    )
    record_change(
        actor=actor,
        action="maintenance.create_window",
        target=window,
        after=window_snapshot(window),
        message=f"Maintenance window #{window.pk} scheduled",
    )
    bump_version()  # the shield's Retry-After reads the windows from the cached state
    return window


def check_window_update(window: MaintenanceWindow, fields: dict[str, Any]) -> None:
    """Refuse changes that would make the worker's bookkeeping lie."""
    unknown = set(fields) - WINDOW_FIELDS
    if unknown:
        raise ServiceError(f"Cannot change {', '.join(sorted(unknown))} here.")
    changed = {name for name, value in fields.items() if getattr(window, name) != value}
    if window.ended_at is not None and changed - {"description", "active"}:
        raise ServiceError("This window is over: only its description and active flag can change.")
    frozen = sorted(changed & {"starts_at", "mode"})
    if window.started_at is not None and frozen:
        raise ServiceError(
            "The window has started: its start and mode can no longer change.", field=frozen[0]
        )
    _check_span(fields.get("starts_at", window.starts_at), fields.get("ends_at", window.ends_at))


@transaction.atomic
def update_window(*, actor: Actor, window: MaintenanceWindow, **fields: Any) -> MaintenanceWindow:
    """Change a window (e.g. `active=False` to cancel it); the worker may be handling it too."""
    window = MaintenanceWindow.objects.select_for_update().get(pk=window.pk)
    check_window_update(window, fields)
    before = window_snapshot(window)
    for name, value in fields.items():
        setattr(window, name, value)
    window.save(update_fields=[*fields, "updated_at"])
    record_change(
        actor=actor,
        action="maintenance.update_window",
        target=window,
        before=before,
        after=window_snapshot(window),
    )
    bump_version()
    return window

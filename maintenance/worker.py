"""The worker step: maintenance windows switch the mode at their start and back at their end.

Each start and each end is handled exactly once, whatever the number of workers: due windows
are claimed with `select_for_update(skip_locked=True)` (PostgreSQL; SQLite's IMMEDIATE
transactions serialise the claims) and marked `started_at` / `ended_at` in the same
transaction as the mode change.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from maintenance import services, state
from maintenance.models import STRENGTH, MaintenanceState, MaintenanceWindow, Mode
from notify.services import emit_event
from valhalla_ops.audit import record_change
from valhalla_ops.principals import SYSTEM

logger = logging.getLogger(__name__)

BATCH = 20


def run_windows() -> int:
    """Start due windows, end finished ones, alert on a long non-normal mode; items handled."""
    now = timezone.now()
    # A switch this process could not publish to Redis (it was down) is published again first.
    published = state.publish_if_behind()
    # Starts first: when one window ends as another begins, the mode passes straight over.
    handled = start_due_windows(now) + end_due_windows(now) + alert_if_not_normal_for_long(now)
    return published + handled


def window_reason(window: MaintenanceWindow) -> str:
    text = f"Maintenance window #{window.pk}"
    return f"{text}: {window.description}" if window.description else text


@transaction.atomic
def start_due_windows(now: datetime) -> int:
    due = MaintenanceWindow.objects.due_to_start(now).select_for_update(skip_locked=True)
    windows = list(due[:BATCH])
    for window in windows:
        _start(window, now)
    return len(windows)


@transaction.atomic
def end_due_windows(now: datetime) -> int:
    due = MaintenanceWindow.objects.due_to_end(now).select_for_update(skip_locked=True)
    windows = list(due[:BATCH])
    for window in windows:
        _end(window, now)
    return len(windows)


def _start(window: MaintenanceWindow, now: datetime) -> None:
    window.started_at = now
    window.save(update_fields=["started_at", "updated_at"])
    state = services.locked_state()
    if STRENGTH[state.mode] >= STRENGTH[window.mode]:  # never weaken the mode in force
        _record_window_event(window, "start", f"mode {state.mode} already in force, left as is")
        return
    services.set_mode(
        actor=SYSTEM,
        mode=window.mode,
        reason=window_reason(window),
        window=window,
        context_data={"window_id": window.pk, "event": "window_start"},
    )
    logger.info("maintenance window %s started: mode %s", window.pk, window.mode)


def _end(window: MaintenanceWindow, now: datetime) -> None:
    window.ended_at = now
    window.save(update_fields=["ended_at", "updated_at"])
    state = services.locked_state()
    if state.window_id != window.pk:  # someone (or another window) changed the mode since
        _record_window_event(window, "end", f"mode {state.mode} was not set by this window")
        return
    successor = _strongest_running(now, exclude=window)
    mode = successor.mode if successor else Mode.NORMAL
    reason = window_reason(successor) if successor else f"Maintenance window #{window.pk} ended"
    services.set_mode(
        actor=SYSTEM,
        mode=mode,
        reason=reason,
        window=successor,
        context_data={"window_id": window.pk, "event": "window_end"},
    )
    logger.info("maintenance window %s ended: mode %s", window.pk, mode)


def _strongest_running(now: datetime, *, exclude: MaintenanceWindow) -> MaintenanceWindow | None:
    """Another started window still in progress: it takes over instead of `normal`."""
    running = MaintenanceWindow.objects.covering(now).filter(
        started_at__isnull=False, ended_at__isnull=True
    )
    candidates = list(running.exclude(pk=exclude.pk))
    return max(candidates, key=lambda w: (STRENGTH[w.mode], w.ends_at), default=None)


def _record_window_event(window: MaintenanceWindow, event: str, detail: str) -> None:
    record_change(
        actor=SYSTEM,
        action=f"maintenance.window_{event}",
        target=window,
        message=f"Maintenance window #{window.pk} {event}: {detail}",
        context_data={"window_id": window.pk, "event": f"window_{event}"},
    )


@transaction.atomic
def alert_if_not_normal_for_long(now: datetime) -> int:
    """Emit `maintenance.mode_stuck` once when the mode stays non-normal past the threshold."""
    threshold = settings.MAINTENANCE_ALERT_AFTER
    if threshold <= 0:
        return 0
    state = (
        MaintenanceState.objects.select_for_update(skip_locked=True)
        .exclude(mode=Mode.NORMAL)
        .filter(alerted_at__isnull=True, since__lte=now - timedelta(seconds=threshold))
        .first()
    )
    if state is None:
        return 0
    assert state.since is not None  # the since__lte filter excludes NULL
    state.alerted_at = now
    state.save(update_fields=["alerted_at"])  # not updated_at: the mode did not change
    minutes = int((now - state.since).total_seconds() // 60)
    message = f"Maintenance mode {state.mode} for {minutes} minutes"
    record_change(actor=SYSTEM, action="maintenance.mode_alert", target=state, message=message)
    payload = {"mode": state.mode, "reason": state.reason, "since": state.since.isoformat()}
    emit_event(topic="maintenance.mode_stuck", payload=payload, subject=message)
    return 1

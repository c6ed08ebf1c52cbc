"""The read-only shield (PACK UJ): writes get 503 while the system is not in normal mode.

- A read is judged by the cached state (no query on a normal read). A write (an unsafe
  method) is judged by the authoritative state (`maintenance.state.judge_write`: one Redis
  round trip, or a primary-key read without Redis), so a switch is seen by every process
  before it returns. If the state cannot be read, writes are refused and reads pass.
- What must stay writable is exempt by path alone (`is_exempt`), so nobody is locked out.
- Some writes are decided by their view, after DRF has authenticated the caller and parsed
  the body (`valhalla_ops.writeguard.defer_to_view`: admin ops, incident containment). The
  shield never reads a body.
- Database backstop: while the mode is not normal, a non-exempt request runs with a
  connection execute wrapper that refuses INSERT/UPDATE/DELETE outside a write permit
  (`valhalla_ops.writeguard`); the refusal becomes the shield's 503.
"""

import logging
import math
import re
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils import timezone

from maintenance.models import Mode
from maintenance.state import StateSnapshot, StateUnavailable, current_state, judge_write
from valhalla_ops.metrics import shield_blocked
from valhalla_ops.writeguard import WriteBlocked, is_bookkeeping, is_deferred

logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
UNKNOWN = "unknown"
MESSAGES = {
    Mode.READ_ONLY: "System is in read-only mode. Write operations are not allowed.",
    Mode.MAINTENANCE: "System is under maintenance. Write operations are not allowed.",
    UNKNOWN: "The maintenance state cannot be read. Write operations are refused until it can.",
}
# The maintenance API and admin (state and windows), sign-in, health checks.
EXEMPT_PREFIXES = ("/system/maintenance/", "/admin/maintenance/", "/admin/login/", "/admin/logout/")
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/healthz/", "/readyz/", "/metrics/"})
WRITE_SQL = re.compile(r"^\s*(?:INSERT|UPDATE|DELETE|REPLACE|MERGE|TRUNCATE)\b", re.IGNORECASE)

__all__ = ["ReadOnlyShieldMiddleware", "WriteBlocked", "shield_response"]


class ReadOnlyShieldMiddleware:
    """Refuse writes with 503 while the system is not in normal mode."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method in SAFE_METHODS:
            return self.read(request)
        judgement = judge_write()
        if judgement is not None and judgement.state.is_normal:
            try:
                return self.get_response(request)
            finally:
                judgement.done()  # a switch waiting for the writes of the old mode
        state = judgement.state if judgement is not None else None
        if is_exempt(request):
            return self.get_response(request)
        if is_deferred(request.method or "", request.path_info):
            return self.guarded(request, state)  # the view decides, with the backstop on
        return shield_response(request, state)

    def read(self, request: HttpRequest) -> HttpResponse:
        state = read_state()
        if state is None or state.is_normal or is_exempt(request):
            return self.get_response(request)  # state unknown: reads pass
        return self.guarded(request, state)

    def guarded(self, request: HttpRequest, state: StateSnapshot | None) -> HttpResponse:
        """Run the request with the database backstop on every connection."""
        mode = state.mode if state is not None else UNKNOWN
        guard = WriteGuard(mode, request.path_info)
        request._maintenance_state = state  # type: ignore[attr-defined]
        request.lockdown_mode = mode  # type: ignore[attr-defined]
        with ExitStack() as stack:
            for conn in connections.all():
                stack.enter_context(conn.execute_wrapper(guard))
            response = self.get_response(request)
        if guard.tripped and response.status_code >= 500:  # raised outside the view
            return shield_response(request, state)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, WriteBlocked):
            return shield_response(request, getattr(request, "_maintenance_state", None))
        return None


class WriteGuard:
    """A connection execute wrapper that refuses writes outside a write permit."""

    def __init__(self, mode: str, path: str) -> None:
        self.mode = mode
        self.path = path
        self.tripped = False

    def __call__(self, execute: Callable, sql: str, params: Any, many: bool, context: Any) -> Any:
        if WRITE_SQL.match(sql) and not is_bookkeeping():
            self.tripped = True
            logger.warning("refused a database write in %s mode on %s", self.mode, self.path)
            raise WriteBlocked(
                f"Database write refused: the system is in {self.mode} mode ({self.path})."
            )
        return execute(sql, params, many, context)


def read_state() -> StateSnapshot | None:
    """The cached state, or None when it cannot be read."""
    try:
        return current_state()
    except StateUnavailable:
        return None


def is_exempt(request: HttpRequest) -> bool:
    """Requests that stay writable in every mode, judged by the path alone."""
    path = request.path_info
    if path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES):
        return True
    extra = tuple(prefix for prefix in settings.MAINTENANCE_EXEMPT_PATHS if prefix)
    return bool(extra) and path.startswith(extra)


def retry_after(state: StateSnapshot | None) -> int:
    """Seconds to the end of the running maintenance window, else the configured default.

    When the state cannot be read at all, the outage's (short) Retry-After.
    """
    if state is None:
        return settings.OUTAGE_RETRY_AFTER
    ends_at = window_end(state)
    if ends_at is not None:
        return max(1, math.ceil((ends_at - timezone.now()).total_seconds()))
    return settings.MAINTENANCE_RETRY_AFTER


def window_end(state: StateSnapshot | None) -> datetime | None:
    """When the running maintenance window ends, if one is running."""
    if state is None:
        return None
    window = state.current_window(timezone.now())
    return window.ends_at if window is not None else None


def lockdown_notice(request: HttpRequest) -> str | None:
    """Why the admin's forms are disabled on this page now, or None when they can be saved."""
    state = read_state()
    if (state is not None and state.is_normal) or is_exempt(request):
        return None
    mode = state.mode if state is not None else UNKNOWN
    reason = f" ({state.reason})" if state is not None and state.reason else ""
    ends_at = window_end(state)
    if ends_at is not None:
        end = f"The maintenance window ends at {ends_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC."
    else:
        end = "No end is scheduled: the mode changes back on the maintenance page."
    return (
        f"{MESSAGES.get(mode, MESSAGES[UNKNOWN])}{reason} This form is shown read-only "
        f"until the mode is back to normal. {end}"
    )


def wants_html(request: HttpRequest) -> bool:
    return request.path_info.startswith("/admin/") and "text/html" in request.headers.get(
        "Accept", ""
    )


def shield_response(request: HttpRequest, state: StateSnapshot | None) -> HttpResponse:
    mode = state.mode if state is not None else UNKNOWN
    detail = MESSAGES.get(mode, MESSAGES[UNKNOWN])
    seconds = retry_after(state)
    shield_blocked.labels(mode).inc()
    if wants_html(request):
        context = {
            "detail": detail,
            "mode": mode,
            "retry_after": seconds,
            "window_end": window_end(state),
        }
        body = render_to_string("maintenance/unavailable.html", context)
        response: HttpResponse = HttpResponse(body, status=503)
    else:
        payload: dict[str, object] = {"status_code": 503, "detail": detail, "mode": mode}
        if state is None:  # an outage, not a decision: say what failed
            payload["unavailable"] = "maintenance state"
        response = JsonResponse(payload, status=503)
    response["Retry-After"] = str(seconds)
    response["Cache-Control"] = "no-store"
    return response

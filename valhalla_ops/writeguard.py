"""Which writes a request may make while the system is not in normal mode.

The maintenance app's shield judges every write by the authoritative mode. While the mode is
not normal, a request it lets through runs under a database backstop that refuses ORM writes,
except inside a permit:

- `bookkeeping()`: system bookkeeping (an API key's last use, a rate-limit snapshot, the audit
  row of a read-only ops action);
- `contain(request)`: incident containment by a holder of `CONTAIN_PERM` (deactivate or rotate
  a client, add or tighten a rate-limit rule); its audit rows record the mode;
- `exempt(request)`: what must stay writable in every mode (the mode switch itself).

The shield marks a request it judged in a lockdown with `request.lockdown_mode`; views and
admin pages ask `write_allowed(request)` / `containment_allowed(user)`, and raise
`WriteBlocked` (the shield turns it into its 503) when a write is not allowed now.
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

CONTAIN_PERM = "maintenance.contain_incident"
BOOKKEEPING = "bookkeeping"
CONTAINMENT = "containment"
EXEMPT = "exempt"


@dataclass(frozen=True, slots=True)
class Permit:
    kind: str
    mode: str = ""


_permit: ContextVar[Permit | None] = ContextVar("valhalla_write_permit", default=None)


class WriteBlocked(Exception):
    """A write refused because the system is not in normal mode (the shield answers 503)."""


@contextmanager
def _permitted(permit: Permit) -> Iterator[None]:
    token = _permit.set(permit)
    try:
        yield
    finally:
        _permit.reset(token)


def bookkeeping() -> Any:
    return _permitted(Permit(BOOKKEEPING))


def is_bookkeeping() -> bool:
    """True inside any permit: the backstop lets the write through."""
    return _permit.get() is not None


def current_permit() -> Permit | None:
    return _permit.get()


def lockdown_mode(request: Any) -> str | None:
    """The mode the shield judged this request under, when it is not normal; else None."""
    return getattr(request, "lockdown_mode", None)


def containment_allowed(user: Any) -> bool:
    """Whether `user` (a User or an API client's principal) may contain an incident in a lockdown."""
    return bool(user is not None and getattr(user, "is_authenticated", False)) and bool(
        user.has_perm(CONTAIN_PERM)
    )


def write_allowed(request: Any, *, containment: bool = False) -> bool:
    """Whether this request may write now: always in normal mode; in a lockdown only a
    containment write (`containment=True`) by a holder of the containment permission."""
    if lockdown_mode(request) is None:
        return True
    return containment and containment_allowed(getattr(request, "user", None))


def refuse(request: Any) -> WriteBlocked:
    mode = lockdown_mode(request) or "unknown"
    return WriteBlocked(f"Write refused: the system is in {mode} mode ({request.path_info}).")


@contextmanager
def contain(request: Any) -> Iterator[None]:
    """Run a containment write; in a lockdown it needs the containment permission.

    In normal mode this does nothing. In a lockdown, a caller without the permission gets
    `WriteBlocked` before anything runs; a holder's writes pass the backstop and are audited
    with the mode.
    """
    mode = lockdown_mode(request)
    if mode is None:
        yield
        return
    if not containment_allowed(getattr(request, "user", None)):
        raise refuse(request)
    with _permitted(Permit(CONTAINMENT, mode)):
        yield


@contextmanager
def exempt(request: Any) -> Iterator[None]:
    """Run a write that stays allowed in every mode (the mode switch), audited with the mode."""
    with _permitted(Permit(EXEMPT, lockdown_mode(request) or "")):
        yield


@dataclass(frozen=True)
class DeferredRoute:
    """A write the shield does not judge alone in a lockdown: it lets the request reach the
    view (with the backstop on), whose authenticated caller and parsed input decide."""

    method: str
    path: re.Pattern[str]


_deferred: list[DeferredRoute] = []


def defer_to_view(method: str, path_regex: str) -> None:
    """Declare a route whose view decides about writes in a lockdown (AppConfig.ready())."""
    route = DeferredRoute(method.upper(), re.compile(path_regex))
    if route not in _deferred:
        _deferred.append(route)


def is_deferred(method: str, path: str) -> bool:
    return any(r.method == method and r.path.match(path) for r in _deferred)

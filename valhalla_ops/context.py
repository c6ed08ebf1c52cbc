"""Per-request context (request id, client IP, actor) read by the audit log."""

from contextvars import ContextVar, Token
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str = ""
    client_ip: str | None = None


NO_REQUEST = RequestContext()
_current: ContextVar[RequestContext | None] = ContextVar("valhalla_request", default=None)


def current() -> RequestContext:
    return _current.get() or NO_REQUEST


def bind(context: RequestContext) -> Token[RequestContext | None]:
    return _current.set(context)


def reset(token: Token[RequestContext | None]) -> None:
    _current.reset(token)

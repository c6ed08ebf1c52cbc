"""Rate limiting on every request: 429 when the strictest matching rule is exceeded.

No rule matching costs a few dict lookups: no query, no Redis call, no headers. A matching
request costs one Redis round trip (or a local-memory update without `REDIS_URL`).
"""

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponse, JsonResponse

from clients.lookup import request_principal
from ratelimits.limiter import Decision, decide
from ratelimits.ruleset import Identity, RuleSet, current_rules
from ratelimits.services import report_exceeded_soon
from ratelimits.store import LogThrottle, StoreUnavailable
from valhalla_ops import metrics
from valhalla_ops.exceptions import error_body
from valhalla_ops.net import client_ip

logger = logging.getLogger(__name__)

ALWAYS_EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})
UNAVAILABLE_DETAIL = "Rate limiting is temporarily unavailable. Try again shortly."

_store_warnings = LogThrottle()
_error_warnings = LogThrottle()
# Bound once: looking a label up costs about a microsecond per request.
_allowed = metrics.ratelimit_decisions.labels("allowed")
_limited = metrics.ratelimit_decisions.labels("limited")
_errors = metrics.ratelimit_decisions.labels("error")


class RateLimitMiddleware:
    """Count each request against every matching rule; refuse it when one is exceeded."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if not settings.RATELIMIT_ENABLED:
            raise MiddlewareNotUsed
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path in ALWAYS_EXEMPT or path.startswith(tuple(settings.RATELIMIT_EXEMPT_PATHS)):
            return self.get_response(request)
        try:
            decision = self.decide(request, path)
        except StoreUnavailable as error:
            metrics.ratelimit_store_errors.inc()
            _store_warnings.warning(logger, "rate-limit store unreachable: %s", error)
            return self.unavailable(request)
        except Exception as error:  # a bug here must not take every request down
            _error_warnings.warning(logger, "rate-limit check failed: %r", error, exc_info=True)
            return self.unavailable(request)
        if decision is None:
            return self.get_response(request)
        if not decision.allowed:
            _limited.inc()
            report_exceeded_soon()  # local memory only; with Redis the worker reports
            return too_many_requests(decision)
        _allowed.inc()
        response = self.get_response(request)
        add_headers(response, decision)
        return response

    def decide(self, request: HttpRequest, path: str) -> Decision | None:
        rules = current_rules()
        if rules.empty:
            return None
        matches = rules.match(request_identity(request, rules, path))
        if not matches:
            return None
        return decide(matches)

    def unavailable(self, request: HttpRequest) -> HttpResponse:
        _errors.inc()
        if settings.RATELIMIT_FAIL_OPEN:
            return self.get_response(request)
        response = JsonResponse(error_body(503, UNAVAILABLE_DETAIL), status=503)
        response["Retry-After"] = "1"
        response["Cache-Control"] = "no-store"
        return response


def request_identity(request: HttpRequest, rules: RuleSet, path: str) -> Identity:
    """The request's identity in each scope; API key and user only if a rule needs them."""
    return Identity(
        ip=client_ip(request),
        client_id=api_client_id(request) if rules.needs_client else None,
        user_id=session_user_id(request) if rules.needs_user else None,
        path=path,
    )


def api_client_id(request: HttpRequest) -> int | None:
    """The API client of the request's key, through the cached lookup DRF's auth uses."""
    _sent, principal = request_principal(request)
    return principal.client_id if principal is not None else None


def session_user_id(request: HttpRequest) -> int | None:
    user = getattr(request, "user", None)  # set lazily by AuthenticationMiddleware
    if user is None or not user.is_authenticated:
        return None
    return user.pk


def too_many_requests(decision: Decision) -> JsonResponse:
    response = JsonResponse(decision.body(), status=429)
    response["Retry-After"] = str(decision.reset)
    response["Cache-Control"] = "no-store"
    add_headers(response, decision)
    return response


def add_headers(response: HttpResponse, decision: Decision) -> None:
    for name, value in decision.headers().items():
        response[name] = value

"""An outage of the database (or of Redis) answers 503 with Retry-After, never a 500.

`OutageMiddleware` turns a view's connection error into the 503 at once. An error in a
middleware further in is turned into Django's 500 before it gets here, so a
`got_request_exception` receiver marks the request and the 500 is replaced on the way out.
API callers get the JSON error shape, the admin an HTML page; both name the failing part.
"""

import logging
import sys
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

from valhalla_ops import metrics

logger = logging.getLogger(__name__)

try:  # Redis is optional: without REDIS_URL nothing here needs it
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError)
except ImportError:  # pragma: no cover
    REDIS_ERRORS = ()

DETAIL = "The {part} is unavailable. Nothing was changed; try again shortly."


def failing_part(error: BaseException | None) -> str | None:
    """'database' or 'redis' when the error is a lost connection to it, else None."""
    if isinstance(error, OperationalError | InterfaceError):
        return "database"
    if REDIS_ERRORS and isinstance(error, REDIS_ERRORS):
        return "redis"
    return None


def outage_response(request: HttpRequest, part: str) -> HttpResponse:
    seconds = settings.OUTAGE_RETRY_AFTER
    detail = DETAIL.format(part=part)
    metrics.outage_responses.labels(part).inc()
    if request.path_info.startswith("/admin/") and not request.path_info.startswith("/admin/ops"):
        context = {"detail": detail, "unavailable": part, "retry_after": seconds}
        response: HttpResponse = HttpResponse(
            render_to_string("valhalla_ops/outage.html", context), status=503
        )
    else:
        body = {"status_code": 503, "detail": detail, "unavailable": part}
        response = JsonResponse(body, status=503)
    response["Retry-After"] = str(seconds)
    response["Cache-Control"] = "no-store"
    return response


class OutageMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        part = getattr(request, "_outage", None)
        if part and response.status_code == 500:
            return outage_response(request, part)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        part = failing_part(exception)
        if part is None:
            return None
        logger.warning("%s unavailable on %s %s: %s", part, request.method, request.path, exception)
        # A middleware on the way out may still trip over the outage (the session middleware
        # does): the mark lets __call__ give the 503 again in place of its 500.
        request._outage = part  # type: ignore[attr-defined]
        return outage_response(request, part)


@receiver(got_request_exception)
def _mark_outage(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    part = failing_part(sys.exc_info()[1])
    if part and request is not None:
        request._outage = part  # type: ignore[attr-defined]

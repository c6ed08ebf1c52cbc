"""Request context: a request id and the client IP, for logs, audit rows and responses.

The same middleware counts every response it returns in `valhalla_http_responses_total`, by
method, status class and view (the resolved URL's name; never the path, which is unbounded),
and the 429s and 503s per minute for the dashboard's charts (`valhalla_ops.trend`).
"""

import re
import uuid
from collections.abc import Callable
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from prometheus_client import Counter

from valhalla_ops import context, metrics, trend
from valhalla_ops.net import client_ip

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Any other method a client sends is counted as "other": label values must stay bounded.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
UNMATCHED = "unmatched"


class RequestContextMiddleware:
    """Give every request an id (kept from X-Request-ID when well formed) and its client IP.

    It counts the responses of the middleware below it (the shield's 503s, the rate limiter's
    429s) and the 500s Django makes of exceptions below it; static files and HTTPS redirects,
    answered above it by WhiteNoise and SecurityMiddleware, are not counted.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        # (method, status, view) -> the counter's child: a dict lookup per request, not labels().
        self.children: dict[tuple[str, int, str], Counter] = {}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        request.client_ip = client_ip(request)  # type: ignore[attr-defined]
        token = context.bind(context.RequestContext(request_id, request.client_ip))  # type: ignore[attr-defined]
        try:
            response = self.get_response(request)
        except Exception:
            # Django turns an exception inside the middleware below into its 500 response before
            # it gets here; it passes through only with DEBUG_PROPAGATE_EXCEPTIONS.
            self.count(request, 500)
            raise
        finally:
            context.reset(token)
        response["X-Request-ID"] = request_id
        self.count(request, response.status_code)
        return response

    def count(self, request: HttpRequest, status: int) -> None:
        method = request.method or ""
        if method not in METHODS:
            method = "other"
        match = request.resolver_match
        view = match.view_name if match is not None else view_before_resolution(request, status)
        key = (method, status, view)
        child = self.children.get(key)
        if child is None:
            child = metrics.http_responses.labels(method, f"{status // 100}xx", view)
            self.children[key] = child
        child.inc()
        if status in trend.STATUSES:  # the dashboard's charts of refused requests
            trend.record(status)
        trend.maybe_flush()


def view_before_resolution(request: HttpRequest, status: int) -> str:
    """The view of a response a middleware gave before the URL was resolved (a 429, a 503)."""
    if status == 404:  # the URL matched nothing: no need to try again
        return UNMATCHED
    # What the handler resolved with (get_urlconf() gives the same, ten times slower).
    urlconf = getattr(request, "urlconf", None) or settings.ROOT_URLCONF
    return resolved_view(request.path_info, urlconf)


@lru_cache(maxsize=1024)
def resolved_view(path: str, urlconf: str) -> str:
    """A path's view name; cached, as resolving costs 15-40 us and a refused client repeats."""
    try:
        return resolve(path, urlconf).view_name
    except Resolver404:
        return UNMATCHED

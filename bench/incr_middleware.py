"""A bench-only middleware: one bare Redis `INCR` per request, nothing else.

`http_overhead.py --breakdown` runs the OFF stack plus this ("OFF + INCR"): the cost of one
Redis round trip per request from a pooled redis-py client (hiredis), the floor under any
per-request counter in Redis, to set the rate limiter's own cost against.
"""

from collections.abc import Callable

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse

KEY = "vobench:incr-middleware"


class BareIncrMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=0.2, socket_timeout=0.2
        )

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self.client.incr(KEY)
        return self.get_response(request)

"""The project settings with the shield, rate limiting and API-key authentication removed.

The baseline of bench/http_overhead.py: the same endpoint, the same stack otherwise (sessions,
CSRF, the request context middleware, DRF with session authentication), open to anonymous
callers.

`BENCH_REMOVE` (environment; default "shield,ratelimit,auth") names what to remove, so
`http_overhead.py --breakdown` can also run the project with one of the three removed;
`BENCH_INCR=1` adds one bare Redis INCR per request (bench/incr_middleware.py).
"""

import os

from valhalla_ops.settings import *  # noqa: F403
from valhalla_ops.settings import MIDDLEWARE, REST_FRAMEWORK

REMOVE = {
    name.strip() for name in os.environ.get("BENCH_REMOVE", "shield,ratelimit,auth").split(",")
}
MIDDLEWARE_OF = {
    "shield": "maintenance.middleware.ReadOnlyShieldMiddleware",
    "ratelimit": "ratelimits.middleware.RateLimitMiddleware",
}
MIDDLEWARE = [name for name in MIDDLEWARE if name not in {MIDDLEWARE_OF.get(r) for r in REMOVE}]
if "auth" in REMOVE:
    REST_FRAMEWORK = {
        **REST_FRAMEWORK,
        "DEFAULT_AUTHENTICATION_CLASSES": [
            name
            for name in REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]
            if name != "clients.authentication.ApiKeyAuthentication"
        ],
    }
if (
    os.environ.get("BENCH_INCR") == "1"
):  # one bare Redis INCR per request (bench/incr_middleware.py)
    MIDDLEWARE = [*MIDDLEWARE, "bench.incr_middleware.BareIncrMiddleware"]
ROOT_URLCONF = "bench.urls"
# /bench/ping is open when there is no API-key authentication, else it needs a caller.
BENCH_PING_AUTHENTICATED = "auth" not in REMOVE

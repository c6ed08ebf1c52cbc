"""The project settings plus a local-memory cache alias for django-ratelimit (the comparison).

django-ratelimit reads `RATELIMIT_USE_CACHE` on every call; bench/ratelimit_decisions.py points
it at "default" (Django's RedisCache when REDIS_URL is set) or at "bench_locmem".
"""

from valhalla_ops.settings import *  # noqa: F403
from valhalla_ops.settings import CACHES

CACHES = {
    **CACHES,
    "bench_locmem": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "bench-django-ratelimit",
    },
}
RATELIMIT_USE_CACHE = "default"

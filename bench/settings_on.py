"""The real project settings, plus the benchmark's endpoint `GET /bench/ping` (bench/urls.py).

Everything that runs on a request is the project's: the read-only shield, rate limiting and
API-key authentication are on, as in production.
"""

from valhalla_ops.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
BENCH_PING_AUTHENTICATED = True  # /bench/ping requires an authenticated caller (an API key)

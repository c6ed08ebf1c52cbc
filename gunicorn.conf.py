"""gunicorn settings; every value can be overridden from the environment."""

import os
import sys
from typing import Any

# Read the Django settings once, in the master, before anything starts: a bad one stops
# gunicorn with one line naming the variable instead of a worker's traceback.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from valhalla_ops.startup import load_settings

load_settings()


def _int_from_env(name: str, default: int, *, minimum: int) -> int:
    """The integer in `name`; a bad value stops gunicorn with a one-line message naming it."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise SystemExit(f"{name} must be at least {minimum}, not {value}")
    return value


def _workers_and_threads() -> tuple[int, int]:
    """With Redis: 2 worker processes by default, sharing state and counters through Redis.

    Without Redis (the embedded default) the maintenance state and the rate-limit counters
    live in one process, so exactly one serves, with threads: a second process would count
    alone and could miss a mode switch's in-flight writes.
    """
    if os.environ.get("REDIS_URL"):
        return _int_from_env("WEB_CONCURRENCY", 2, minimum=1), _int_from_env(
            "GUNICORN_THREADS", 1, minimum=1
        )
    processes = _int_from_env("WEB_CONCURRENCY", 1, minimum=1)
    if processes != 1:
        raise SystemExit(
            f"WEB_CONCURRENCY={processes} needs REDIS_URL: without Redis one process serves "
            "(raise GUNICORN_THREADS instead)"
        )
    return 1, _int_from_env("GUNICORN_THREADS", 8, minimum=1)


bind = os.environ.get("BIND", "127.0.0.1:8000")
workers, threads = _workers_and_threads()
timeout = _int_from_env("GUNICORN_TIMEOUT", 30, minimum=1)
graceful_timeout = 20
keepalive = 5
max_requests = _int_from_env("GUNICORN_MAX_REQUESTS", 0, minimum=0)
max_requests_jitter = 100
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-")
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def child_exit(server: Any, worker: Any) -> None:  # gunicorn ships no type hints
    """With multiprocess metrics, drop the live gauges of a worker that exited (its counters stay)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Imported here: the master never loads prometheus-client, so a worker forked from it
        # picks its metrics mode after Django has read the environment.
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

"""Per-minute counts of refused requests (429s, 503s) for the last hour, for the dashboard.

The hot path only adds to a counter in process memory (no query, no network). At most every
FLUSH_SECONDS, the next request a process serves adds what it counted to one cache entry per
status and minute (`cache.add` + `cache.incr`), so with a shared cache (Redis) the dashboard
sees every process; with the local-memory cache of the embedded default, each process counts
what it served itself. Entries expire after two hours. A cache error drops that flush's counts
with a warning and pauses flushing for FAILURE_PAUSE seconds: a chart never breaks a request,
and an unreachable cache stalls one request a minute per process, not one every 5 seconds.
"""

import logging
import threading
import time
from collections import Counter

from django.core.cache import cache

logger = logging.getLogger(__name__)

STATUSES = frozenset({429, 503})
FLUSH_SECONDS = 5.0
FAILURE_PAUSE = 60.0  # after a cache error: a cache timeout stalls the one request flushing
MINUTES = 60
KEEP_SECONDS = 2 * 3600

_lock = threading.Lock()
_pending: Counter[tuple[int, int]] = Counter()  # (status, minute) -> count not yet flushed
_next_flush = 0.0  # time.monotonic() after which a request flushes


def key(status: int, minute: int) -> str:
    return f"vo:trend:{status}:{minute}"


def record(status: int) -> None:
    """Count one refused response (call only for a status in STATUSES)."""
    with _lock:
        _pending[(status, int(time.time() // 60))] += 1


def maybe_flush() -> None:
    """Flush when counts wait and FLUSH_SECONDS have passed: a float comparison otherwise."""
    if _pending and time.monotonic() >= _next_flush:
        flush()


def flush() -> None:
    global _next_flush
    with _lock:
        taken = dict(_pending)
        _pending.clear()
        _next_flush = time.monotonic() + FLUSH_SECONDS
    for (status, minute), count in taken.items():
        try:
            cache.add(key(status, minute), 0, KEEP_SECONDS)
            cache.incr(key(status, minute), count)
        except Exception:  # a chart must never break a request, nor slow many of them
            logger.warning("could not store the 429/503 counts: retrying in %ss", FAILURE_PAUSE)
            _next_flush = time.monotonic() + FAILURE_PAUSE
            return


def last_hour(status: int, *, now: float | None = None) -> list[int]:
    """Counts per minute, oldest first, the current minute last (this process's included)."""
    flush()
    current = int((time.time() if now is None else now) // 60)
    minutes = range(current - MINUTES + 1, current + 1)
    try:
        stored = cache.get_many([key(status, minute) for minute in minutes])
    except Exception:
        logger.warning("could not read the %s trend", status)
        stored = {}
    return [int(stored.get(key(status, minute), 0)) for minute in minutes]


def reset() -> None:
    """Forget unflushed counts (tests)."""
    global _next_flush
    with _lock:
        _pending.clear()
        _next_flush = 0.0


def forget() -> None:
    """Forget every count of the last two hours, flushed or not (tests)."""
    reset()
    current = int(time.time() // 60)
    minutes = range(current - KEEP_SECONDS // 60, current + 2)
    cache.delete_many([key(status, minute) for status in STATUSES for minute in minutes])

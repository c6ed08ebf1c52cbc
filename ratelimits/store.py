"""Counter stores: Redis (shared by every process) or local memory (per process).

`incr_many(keys, ttls)` adds one to every counter and returns the new counts, atomically per
counter. The Redis store does it in one round trip with a Lua script (EVALSHA) through one
pooled client per process; Django's RedisCache is not used because it builds a client per call.
"""

import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import Protocol

import redis
from django.conf import settings
from redis.commands.core import Script
from redis.exceptions import NoScriptError

logger = logging.getLogger(__name__)

# KEYS: counters; ARGV[i]: seconds KEYS[i] lives after its first increment; ARGV[n + i]: how
# much to add to KEYS[i]. Returns the new totals.
INCR_SCRIPT = """
local n = #KEYS
local counts = {}
for i, key in ipairs(KEYS) do
  local amount = tonumber(ARGV[n + i])
  local count = redis.call('INCRBY', key, amount)
  if count == amount then
    redis.call('EXPIRE', key, ARGV[i])
  end
  counts[i] = count
end
return counts
"""
# The same for one counter (the common case), about a microsecond cheaper for Redis to run.
INCR_ONE_SCRIPT = """
local amount = tonumber(ARGV[2])
local count = redis.call('INCRBY', KEYS[1], amount)
if count == amount then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return {count}
"""
# Leases: for a large limit a process reserves a block of request numbers in one round trip
# and hands them out from memory. A block is at most 1/LEASE_DIVISOR of the limit (and at
# most LEASE_MAX); within LEASE_MARGIN blocks of the limit, numbers go one at a time again.
LEASE_DIVISOR = 64
LEASE_MAX = 64
LEASE_MARGIN = 8
LEASES_KEPT = 4096
BREAKER_SECONDS = 1.0  # after a failure, skip Redis this long instead of waiting on it again
SCAN_BATCH = 1000


class StoreUnavailable(Exception):
    """The counter store could not be reached."""


class CounterStore(Protocol):
    name: str

    def incr_many(
        self, keys: Sequence[str], ttls: Sequence[int], limits: Sequence[int] | None = None
    ) -> list[int]: ...

    def counters(self, prefix: str) -> list[tuple[str, int]]: ...


class LogThrottle:
    """Log a repeated warning at most once per `interval` seconds, with how many were skipped."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self.next_at = 0.0
        self.skipped = 0

    def warning(
        self, log: logging.Logger, message: str, *args: object, exc_info: bool = False
    ) -> None:
        now = time.monotonic()
        if now < self.next_at:
            self.skipped += 1
            return
        log.warning("%s (%s similar skipped)", message % args, self.skipped, exc_info=exc_info)
        self.next_at = now + self.interval
        self.skipped = 0


class LocalStore:
    """Counters in this process's memory: thread-safe, not shared between processes."""

    name = "local-memory"
    sweep_interval = 10.0

    def __init__(self) -> None:
        self._counts: dict[str, list[float]] = {}  # key -> [count, expires (monotonic)]
        self._lock = threading.Lock()
        self._next_sweep = time.monotonic() + self.sweep_interval

    def incr_many(
        self, keys: Sequence[str], ttls: Sequence[int], limits: Sequence[int] | None = None
    ) -> list[int]:
        now = time.monotonic()
        counts = []
        with self._lock:
            if now >= self._next_sweep:
                self._sweep(now)
            for key, ttl in zip(keys, ttls, strict=True):
                entry = self._counts.get(key)
                if entry is None or entry[1] <= now:
                    entry = self._counts[key] = [0, now + ttl]
                entry[0] += 1
                counts.append(int(entry[0]))
        return counts

    def counters(self, prefix: str) -> list[tuple[str, int]]:
        now = time.monotonic()
        with self._lock:
            items = list(self._counts.items())
        return [(k, int(v[0])) for k, v in items if k.startswith(prefix) and v[1] > now]

    def _sweep(self, now: float) -> None:
        for key in [k for k, v in self._counts.items() if v[1] <= now]:
            del self._counts[key]
        self._next_sweep = now + self.sweep_interval


class RedisStore:
    """Counters in Redis, shared by every process; one round trip per decision.

    Decisions go out on one connection per thread, straight through `send_command` and
    `read_response`: the client's per-call pool checkout, retry wrapper and event hooks cost
    more than Redis itself takes to run the script. Scans and script loads use the client.
    """

    name = "redis"

    def __init__(self, url: str, *, timeout: float) -> None:
        self.client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout
        )
        self.script = self.client.register_script(INCR_SCRIPT)
        self.script_one = self.client.register_script(INCR_ONE_SCRIPT)
        self._down_until = 0.0
        self._local = threading.local()
        self._connections: list[redis.Connection] = []
        self._lock = threading.Lock()

    def incr_many(
        self, keys: Sequence[str], ttls: Sequence[int], limits: Sequence[int] | None = None
    ) -> list[int]:
        """Each key's request number: from this thread's lease, else from Redis.

        Without `limits` every number comes from Redis. Numbers are unique across processes,
        so at most `limit` requests are ever allowed; numbers a process reserved and did not
        hand out before the window ended are lost (at most one block per counter and process).
        """
        leases = self._leases()
        counts: list[int] = [0] * len(keys)
        wanted: list[int] = []
        for index, key in enumerate(keys):
            lease = leases.get(key)
            if lease is not None and lease[0] <= lease[1]:
                counts[index] = lease[0]
                lease[0] += 1
            else:
                wanted.append(index)
        if wanted:
            self._reserve(leases, keys, ttls, limits, wanted, counts)
        return counts

    def _reserve(
        self,
        leases: dict,
        keys: Sequence[str],
        ttls: Sequence[int],
        limits: Sequence[int] | None,
        wanted: list[int],
        counts: list[int],
    ) -> None:
        if self._down_until and time.monotonic() < self._down_until:
            raise StoreUnavailable("Redis failed less than a second ago")
        amounts = [_block(limits[i], leases.get(keys[i])) if limits else 1 for i in wanted]
        try:
            totals = self._evalsha([keys[i] for i in wanted], [ttls[i] for i in wanted], amounts)
        except (redis.RedisError, OSError) as error:
            self._down_until = time.monotonic() + BREAKER_SECONDS
            raise StoreUnavailable(str(error)) from error
        self._down_until = 0.0
        if len(leases) > LEASES_KEPT:
            leases.clear()  # old windows' leases; dropping a live one only wastes its numbers
        for index, amount, total in zip(wanted, amounts, totals, strict=True):
            counts[index] = total - amount + 1
            leases[keys[index]] = [total - amount + 2, total]

    def _leases(self) -> dict[str, list[int]]:
        """This thread's leases: counter -> [next number to hand out, last reserved number]."""
        local = self._local
        leases = getattr(local, "leases", None)
        if leases is None or getattr(local, "leases_pid", None) != os.getpid():
            leases = local.leases = {}
            local.leases_pid = os.getpid()
        return leases

    def connection(self) -> redis.Connection:
        """This thread's connection (a new one after a fork: sockets are not shared)."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.connection = self.client.connection_pool.make_connection()
            local.pid = os.getpid()
            with self._lock:
                self._connections.append(local.connection)
        return local.connection

    def _evalsha(
        self, keys: Sequence[str], ttls: Sequence[int], amounts: Sequence[int]
    ) -> list[int]:
        script = self.script_one if len(keys) == 1 else self.script
        args = [*ttls, *amounts]
        connection = self.connection()
        try:
            return self._call(connection, script, keys, args)
        except redis.TimeoutError:
            connection.disconnect()
            raise
        except (redis.ConnectionError, OSError):
            # A socket gone stale (Redis restarted) fails once: retry on a fresh connection.
            # At worst a request counts twice, which errs on the strict side.
            connection.disconnect()
        try:
            return self._call(connection, script, keys, args)
        except (redis.RedisError, OSError):
            connection.disconnect()
            raise

    def _call(
        self, connection: redis.Connection, script: Script, keys: Sequence[str], args: list[int]
    ) -> list[int]:
        try:
            connection.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
            return connection.read_response()
        except NoScriptError:  # a restarted or new server: load the script, run it once more
            script.sha = self.client.script_load(script.script)
            connection.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
            return connection.read_response()

    def counters(self, prefix: str) -> list[tuple[str, int]]:
        try:
            keys = list(self.client.scan_iter(match=_glob_escape(prefix) + "*", count=SCAN_BATCH))
            found: list[tuple[str, int]] = []
            for start in range(0, len(keys), SCAN_BATCH):
                batch = keys[start : start + SCAN_BATCH]
                values = self.client.mget(batch)
                found += [
                    (k.decode(), int(v))
                    for k, v in zip(batch, values, strict=True)
                    if v is not None
                ]
        except (redis.RedisError, OSError) as error:
            raise StoreUnavailable(str(error)) from error
        return found

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.disconnect()
        self.client.close()


def _block(limit: int, lease: list[int] | None) -> int:
    """How many numbers to reserve: one near the limit or for small limits, else a block."""
    block = min(LEASE_MAX, limit // LEASE_DIVISOR)
    if block <= 1:
        return 1
    seen = lease[1] if lease is not None else 0
    return block if limit - seen > block * LEASE_MARGIN else 1


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


_store: tuple[str, CounterStore] | None = None
_store_lock = threading.Lock()


def get_store() -> CounterStore:
    """This process's store for the current `REDIS_URL` (Redis if set, else local memory)."""
    current = _store
    url = settings.REDIS_URL
    if current is not None and current[0] == url:
        return current[1]
    return _build(url)


def _build(url: str) -> CounterStore:
    global _store
    with _store_lock:
        if _store is not None and _store[0] == url:
            return _store[1]
        timeout = settings.RATELIMIT_REDIS_TIMEOUT
        store: CounterStore = RedisStore(url, timeout=timeout) if url else LocalStore()
        old, _store = _store, (url, store)
    if old is not None and isinstance(old[1], RedisStore):
        old[1].close()
    return store


def reset_store() -> None:
    """Forget the store (tests, or after changing REDIS_URL); the next call builds a new one."""
    global _store
    with _store_lock:
        old, _store = _store, None
    if old is not None and isinstance(old[1], RedisStore):
        old[1].close()

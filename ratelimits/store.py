"""Counter stores: Redis (shared by every process) or local memory (per process).

`incr_many(keys, ttls, limits, reports)` adds one to every counter and returns the new counts,
atomically per counter. Every count is exact: nothing is reserved ahead, so a request is
allowed only by a number no other request got. The Redis store does it in one round trip for
all the counters of a decision, a Lua script (EVALSHA) on a connection of its own per thread;
Django's RedisCache is not used because it builds a client per call.

Excess: a counter over its limit is recorded in the same call under its report (its rule and
window): how many counters went over and the highest counts. The reporting service reads them
with `excess()`, writes one snapshot per report off the request path, and `forget_excess()`
drops a report once its windows are over.
"""

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import redis
from django.conf import settings
from redis.commands.core import Script
from redis.exceptions import NoScriptError

try:
    import hiredis
except ImportError:  # pragma: no cover - redis[hiredis] is what requirements.txt installs
    hiredis = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

# KEYS[1..n]: counters; KEYS[n+1]: the excess index (a hash: report -> counters over);
# KEYS[n+1+i]: the excess set of counter i's report (counter -> count, the highest kept).
# ARGV[1..n]: seconds each counter lives after its first increment; ARGV[n+i]: its limit;
# ARGV[2n+i]: its report; ARGV[3n+1]: seconds an excess record lives; ARGV[3n+2]: how many
# of the highest counts a set keeps. Returns the new counts.
INCR_SCRIPT = """
local n = (#KEYS - 1) / 2
local index = KEYS[n + 1]
local keep = tonumber(ARGV[3 * n + 2])
local counts = {}
for i = 1, n do
  local key = KEYS[i]
  local count = redis.call('INCR', key)
  if count == 1 then
    redis.call('EXPIRE', key, ARGV[i])
  end
  counts[i] = count
  local limit = tonumber(ARGV[n + i])
  if count > limit then
    local top = KEYS[n + 1 + i]
    local ttl = tonumber(ARGV[3 * n + 1])
    if redis.call('ZADD', top, count, key) == 1 then
      redis.call('EXPIRE', top, ttl)
    end
    if count == limit + 1 then
      redis.call('HINCRBY', index, ARGV[2 * n + i], 1)
      if redis.call('TTL', index) < ttl then
        redis.call('EXPIRE', index, ttl)
      end
    end
    if redis.call('ZCARD', top) > 2 * keep then
      redis.call('ZREMRANGEBYRANK', top, 0, -(keep + 1))
    end
  end
end
return counts
"""
BREAKER_SECONDS = 1.0  # after a failure, skip Redis this long instead of waiting on it again
SCAN_BATCH = 1000
EXCESS_TOP_KEPT = 100  # counters kept per report: the highest counts (100 to 200 at a time)
EXCESS_GRACE = 300  # seconds an excess record outlives its windows, for the reporter to read
NO_LIMIT = 2**62  # the limit of a counter that is only counted (a script or a test)


class StoreUnavailable(Exception):
    """The counter store could not be reached."""


@dataclass(frozen=True, slots=True)
class Excess:
    """One report: the counters of one rule and window that went over the limit."""

    report: str  # "<rule id>:<window seconds>:<index of the window aligned to the epoch>"
    keys_over: int  # how many counters went over
    top: list[tuple[str, int]]  # (counter, count), highest first


class CounterStore(Protocol):
    name: str

    def incr_many(
        self,
        keys: Sequence[str],
        ttls: Sequence[int],
        limits: Sequence[int] | None = None,
        reports: Sequence[str] | None = None,
        excess_ttl: int = 0,
    ) -> list[int]: ...

    def counters(self, prefix: str) -> list[tuple[str, int]]: ...

    def excess(self, *, top: int) -> list[Excess]: ...

    def forget_excess(self, reports: Sequence[str]) -> None: ...


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


def excess_ttl(windows: Sequence[int]) -> int:
    """How long the excess records of these rules must live: past their reporting windows."""
    return max(windows) + EXCESS_GRACE


class LocalStore:
    """Counters in this process's memory: thread-safe, not shared between processes."""

    name = "local-memory"
    sweep_interval = 10.0

    def __init__(self) -> None:
        self._counts: dict[str, list[float]] = {}  # key -> [count, expires (monotonic)]
        # report -> [counters over, {counter: count}, expires (monotonic)]
        self._excess: dict[str, list] = {}
        self._lock = threading.Lock()
        self._next_sweep = time.monotonic() + self.sweep_interval
        self.next_report = 0.0  # monotonic time the request path may report again

    def incr_many(
        self,
        keys: Sequence[str],
        ttls: Sequence[int],
        limits: Sequence[int] | None = None,
        reports: Sequence[str] | None = None,
        excess_ttl: int = 0,
    ) -> list[int]:
        now = time.monotonic()
        counts = []
        with self._lock:
            if now >= self._next_sweep:
                self._sweep(now)
            for index, (key, ttl) in enumerate(zip(keys, ttls, strict=True)):
                entry = self._counts.get(key)
                if entry is None or entry[1] <= now:
                    entry = self._counts[key] = [0, now + ttl]
                entry[0] += 1
                count = int(entry[0])
                counts.append(count)
                if limits is not None and reports is not None and count > limits[index]:
                    self._over(reports[index], key, count, limits[index], now + excess_ttl)
        return counts

    def _over(self, report: str, key: str, count: int, limit: int, expires: float) -> None:
        record = self._excess.get(report)
        if record is None:
            record = self._excess[report] = [0, {}, expires]
        if count == limit + 1:
            record[0] += 1
            record[2] = max(record[2], expires)
        top: dict[str, int] = record[1]
        top[key] = count
        if len(top) > 2 * EXCESS_TOP_KEPT:
            kept = sorted(top.items(), key=lambda item: item[1], reverse=True)[:EXCESS_TOP_KEPT]
            record[1] = dict(kept)

    def counters(self, prefix: str) -> list[tuple[str, int]]:
        now = time.monotonic()
        with self._lock:
            items = list(self._counts.items())
        return [(k, int(v[0])) for k, v in items if k.startswith(prefix) and v[1] > now]

    def excess(self, *, top: int) -> list[Excess]:
        now = time.monotonic()
        with self._lock:
            records = [(r, v[0], dict(v[1])) for r, v in self._excess.items() if v[2] > now]
        return [
            Excess(report, over, sorted(counts.items(), key=lambda kv: kv[1], reverse=True)[:top])
            for report, over, counts in records
            if over
        ]

    def forget_excess(self, reports: Sequence[str]) -> None:
        with self._lock:
            for report in reports:
                self._excess.pop(report, None)

    def _sweep(self, now: float) -> None:
        for key in [k for k, v in self._counts.items() if v[1] <= now]:
            del self._counts[key]
        for report in [r for r, v in self._excess.items() if v[2] <= now]:
            del self._excess[report]
        self._next_sweep = now + self.sweep_interval


class RedisStore:
    """Counters in Redis, shared by every process; one round trip per decision.

    Decisions go out on one connection per thread, packed by hiredis and sent with
    `send_packed_command`, read with `read_response`: the client's per-call pool checkout,
    retry wrapper, event hooks and argument encoder cost more than Redis itself takes to run
    the script. Scans, reports and script loads use the client.
    """

    name = "redis"

    def __init__(self, url: str, *, timeout: float, prefix: str = "vo") -> None:
        self.client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout
        )
        self.script = self.client.register_script(INCR_SCRIPT)
        self.excess_index = f"{prefix}:rlx"
        self._down_until = 0.0
        self._local = threading.local()
        self._connections: list[redis.Connection] = []
        self._lock = threading.Lock()

    def incr_many(
        self,
        keys: Sequence[str],
        ttls: Sequence[int],
        limits: Sequence[int] | None = None,
        reports: Sequence[str] | None = None,
        excess_ttl: int = 0,
    ) -> list[int]:
        """Each counter's new count (its request number in the window), from one EVALSHA."""
        if self._down_until and time.monotonic() < self._down_until:
            raise StoreUnavailable("Redis failed less than a second ago")
        if limits is None or reports is None:
            limits, reports = [NO_LIMIT] * len(keys), [""] * len(keys)
        index = self.excess_index
        script_keys = [*keys, index, *(f"{index}:{report}" for report in reports)]
        args: list[int | str] = [*ttls, *limits, *reports]
        args += [excess_ttl or EXCESS_GRACE, EXCESS_TOP_KEPT]
        try:
            counts = self._evalsha(script_keys, args)
        except (redis.RedisError, OSError) as error:
            self._down_until = time.monotonic() + BREAKER_SECONDS
            raise StoreUnavailable(str(error)) from error
        self._down_until = 0.0
        return counts

    def connection(self) -> redis.Connection:
        """This thread's connection (a new one after a fork: sockets are not shared)."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.connection = self.client.connection_pool.make_connection()
            local.pid = os.getpid()
            with self._lock:
                self._connections.append(local.connection)
        return local.connection

    def _evalsha(self, keys: Sequence[str], args: list[int | str]) -> list[int]:
        connection = self.connection()
        try:
            return self._call(connection, self.script, keys, args)
        except redis.TimeoutError:
            connection.disconnect()
            raise
        except (redis.ConnectionError, OSError):
            # A socket gone stale (Redis restarted) fails once: retry on a fresh connection.
            # At worst a request counts twice, which errs on the strict side.
            connection.disconnect()
        try:
            return self._call(connection, self.script, keys, args)
        except (redis.RedisError, OSError):
            connection.disconnect()
            raise

    def _call(
        self,
        connection: redis.Connection,
        script: Script,
        keys: Sequence[str],
        args: list[int | str],
    ) -> list[int]:
        try:
            send(connection, ("EVALSHA", script.sha, len(keys), *keys, *args))
            return connection.read_response()
        except NoScriptError:  # a restarted or new server: load the script, run it once more
            script.sha = self.client.script_load(script.script)
            send(connection, ("EVALSHA", script.sha, len(keys), *keys, *args))
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

    def excess(self, *, top: int) -> list[Excess]:
        """Every report with counters over their limit: one HGETALL, one ZREVRANGE each."""
        try:
            reports: dict[bytes, bytes] = self.client.hgetall(self.excess_index)  # type: ignore[assignment]
            found = []
            for report, over in sorted(reports.items()):
                name = report.decode()
                pairs: list[tuple[bytes, float]] = self.client.zrevrange(  # type: ignore[assignment]
                    f"{self.excess_index}:{name}", 0, top - 1, withscores=True
                )
                counts = [(key.decode(), int(score)) for key, score in pairs]
                found.append(Excess(name, int(over), counts))
        except (redis.RedisError, OSError) as error:
            raise StoreUnavailable(str(error)) from error
        return found

    def forget_excess(self, reports: Sequence[str]) -> None:
        if not reports:
            return
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.hdel(self.excess_index, *reports)
            pipe.delete(*(f"{self.excess_index}:{report}" for report in reports))
            pipe.execute()
        except (redis.RedisError, OSError) as error:
            raise StoreUnavailable(str(error)) from error

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.disconnect()
        self.client.close()


def send(connection: redis.Connection, command: tuple[str | int, ...]) -> None:
    """Send one command, packed by hiredis straight from its arguments.

    `Connection.send_command` first runs every argument through redis-py's encoder, in Python:
    for a decision's dozen arguments that costs about a quarter of its CPU time.
    """
    if hiredis is None:  # hiredis is pinned; without it, redis-py's own packer
        connection.send_command(*command)
    else:  # (hiredis's stub types the argument as a 1-tuple)
        connection.send_packed_command([hiredis.pack_command(command)])  # type: ignore[arg-type]


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
        prefix = str(settings.CACHES["default"].get("KEY_PREFIX") or "vo")
        store: CounterStore = (
            RedisStore(url, timeout=timeout, prefix=prefix) if url else LocalStore()
        )
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

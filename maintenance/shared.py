"""The maintenance state in Redis: one hash per database, written only by a newer version.

The hash holds `version`, `mode` and `data` (the whole snapshot as JSON). Every write goes
through a Lua script that compares versions inside Redis, so neither a publisher nor a reader
refilling a missing entry can replace a newer state with an older one.

A write request costs one round trip (`admit`): the version and mode, the snapshot only when
this process's copy is older, and, when the mode is normal, one more write admitted under that
version (`inflight`, so a switch can wait for them; `release` takes it back when the request
ends).
"""

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import connection
from redis.commands.core import Script

logger = logging.getLogger(__name__)

INFLIGHT_TTL = 86400  # counts a crashed process never took back are dropped after a day

STORE_SCRIPT = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '-1')
if ARGV[4] ~= '1' and current >= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'mode', ARGV[2], 'data', ARGV[3])
return 1
"""
# ARGV[1]: the version this process holds; ARGV[2]: '1' to count an admitted write.
ADMIT_SCRIPT = """
local found = redis.call('HMGET', KEYS[1], 'version', 'mode')
local version, mode = found[1], found[2]
if not version then
  return false
end
if ARGV[2] == '1' and mode == 'normal' then
  redis.call('HINCRBY', KEYS[2], version, 1)
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
if version == ARGV[1] then
  return {version, mode}
end
return {version, mode, redis.call('HGET', KEYS[1], 'data')}
"""
RELEASE_SCRIPT = """
local left = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if left <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return left
"""


class SharedUnavailable(Exception):
    """Redis could not be reached."""


@dataclass(frozen=True)
class Admitted:
    version: int
    mode: str
    data: dict[str, Any] | None  # None: the same version as the caller's copy
    counted: bool


@dataclass
class _Target:
    client: redis.Redis
    store: Script
    admit: Script
    release: Script


_targets: dict[tuple[str, str], _Target] = {}
_lock = threading.Lock()


def _target() -> _Target | None:
    """One pooled client per process for the configured Redis cache; None without one."""
    store = caches["default"]
    if not isinstance(store, RedisCache):
        return None
    conf = settings.CACHES["default"]
    options: dict[str, Any] = dict(conf.get("OPTIONS") or {})  # type: ignore[arg-type]
    ident = (str(conf["LOCATION"]), repr(sorted(options.items())))
    target = _targets.get(ident)
    if target is None:
        with _lock:
            target = _targets.get(ident)
            if target is None:
                client = redis.Redis.from_url(str(conf["LOCATION"]), **options)
                target = _Target(
                    client,
                    client.register_script(STORE_SCRIPT),
                    client.register_script(ADMIT_SCRIPT),
                    client.register_script(RELEASE_SCRIPT),
                )
                _targets[ident] = target
    return target


def configured() -> bool:
    return isinstance(caches["default"], RedisCache)


def state_key() -> str:
    """One entry per database (through the cache's key prefix), so deployments stay apart."""
    name = f"maintenance:state:v2:{connection.settings_dict.get('NAME')}"
    return caches["default"].make_key(name)


def inflight_key() -> str:
    return state_key() + ":inflight"


def _run(script: Script, keys: list[str], args: list[Any]) -> Any:
    try:
        return script(keys=keys, args=args)
    except (redis.RedisError, OSError) as error:
        raise SharedUnavailable(str(error)) from error


def store(version: int, mode: str, data: dict[str, Any], *, force: bool = False) -> bool:
    """Write the state unless Redis holds a newer version (any version with `force`)."""
    target = _target()
    if target is None:
        return False
    payload = json.dumps(data, separators=(",", ":"))
    args = [version, mode, payload, "1" if force else "0"]
    return bool(_run(target.store, [state_key()], args))


def admit(held_version: int, *, count: bool) -> Admitted | None:
    """The authoritative version and mode in one round trip; None when Redis has no entry."""
    target = _target()
    assert target is not None  # callers check configured() first
    args = [held_version, "1" if count else "0", INFLIGHT_TTL]
    reply = _run(target.admit, [state_key(), inflight_key()], args)
    if not reply:
        return None
    version, mode = int(reply[0]), reply[1].decode()
    data = json.loads(reply[2]) if len(reply) > 2 and reply[2] else None
    return Admitted(version, mode, data, count and mode == "normal")


def release(version: int) -> None:
    """One write admitted under `version` has ended."""
    target = _target()
    if target is None:
        return
    try:
        _run(target.release, [inflight_key()], [version])
    except SharedUnavailable as error:
        logger.warning("maintenance state: could not count a finished write: %s", error)


def inflight(version: int) -> int:
    """Writes admitted under `version` that are still running, in every process."""
    target = _target()
    if target is None:
        return 0
    try:
        value = target.client.hget(inflight_key(), str(version))
    except (redis.RedisError, OSError) as error:
        raise SharedUnavailable(str(error)) from error
    return int(value or 0)


def read() -> dict[str, Any] | None:
    """The stored snapshot data (None when missing)."""
    target = _target()
    if target is None:
        return None
    try:
        raw = target.client.hget(state_key(), "data")
    except (redis.RedisError, OSError) as error:
        raise SharedUnavailable(str(error)) from error
    return json.loads(raw) if raw else None


def delete() -> None:
    target = _target()
    if target is not None:
        try:
            target.client.delete(state_key(), inflight_key())
        except (redis.RedisError, OSError) as error:
            logger.warning("maintenance state: could not clear Redis: %s", error)

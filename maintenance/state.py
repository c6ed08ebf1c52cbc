"""The maintenance state as the hot path sees it: cached, never a query on a normal request.

Two layers:
- a per-process copy that lives `MAINTENANCE_STATE_CACHE_SECONDS` (0.5 s by default);
- with a shared cache (Redis, when `REDIS_URL` is set), one entry every process reads when its
  copy expires. Changes made through the services are pushed to both on commit, so every
  process sees a change within the local TTL. Without a shared cache, an expired copy is
  reloaded from the database (one query per process per TTL at most).

If neither the shared cache nor the database answers, `current_state()` raises
`StateUnavailable`: the shield then refuses writes and lets reads through.
"""

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime

from django.conf import settings
from django.core.cache import BaseCache, caches
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.db import connection, transaction
from django.utils import timezone

from maintenance.models import MaintenanceState, MaintenanceWindow, Mode
from valhalla_ops.cache import LocalTTLCache

logger = logging.getLogger(__name__)

# A safety net for changes made behind the services' back (manual SQL, a restored backup):
# the shared entry is rebuilt from the database at least this often.
SHARED_TTL = 300
MAX_WINDOWS = 20
_LOCAL_KEY = "state"
_NORMAL = Mode.NORMAL.value  # a plain str: enum attribute access costs on the hot path


class StateUnavailable(RuntimeError):
    """Neither the cache nor the database could say which mode the system is in."""


@dataclass(frozen=True)
class WindowSpan:
    id: int
    starts_at: datetime
    ends_at: datetime
    mode: str


@dataclass(frozen=True)
class StateSnapshot:
    mode: str = Mode.NORMAL.value
    reason: str = ""
    changed_by: str = ""
    updated_at: datetime | None = None
    since: datetime | None = None
    windows: tuple[WindowSpan, ...] = field(default_factory=tuple)  # enabled, not over yet

    @property
    def is_normal(self) -> bool:
        return self.mode == _NORMAL

    def current_window(self, moment: datetime) -> WindowSpan | None:
        """The running window that ends last, if any."""
        running = [w for w in self.windows if w.starts_at <= moment < w.ends_at]
        return max(running, key=lambda w: w.ends_at, default=None)

    def next_window(self, moment: datetime) -> WindowSpan | None:
        return next((w for w in self.windows if w.starts_at > moment), None)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "StateSnapshot":
        windows = tuple(WindowSpan(**w) for w in data.get("windows", ()))
        return cls(**{**data, "windows": windows})


_UNAVAILABLE = object()
_local: LocalTTLCache[object] = LocalTTLCache(
    ttl=lambda: settings.MAINTENANCE_STATE_CACHE_SECONDS, maxsize=4
)


def shared_key() -> str:
    """One entry per database, so deployments (or test runs) sharing a Redis stay apart."""
    return f"maintenance:state:v1:{connection.settings_dict.get('NAME')}"


def shared_cache() -> BaseCache | None:
    """Django's default cache when it is shared between processes (not local memory)."""
    store = caches["default"]
    return None if isinstance(store, LocMemCache | DummyCache) else store


def load_from_database() -> StateSnapshot:
    """Read the row (creating nothing) and the windows that are not over yet."""
    now = timezone.now()
    row = MaintenanceState.objects.filter(pk=MaintenanceState.SINGLETON_ID).first()
    windows = tuple(
        WindowSpan(w.pk, w.starts_at, w.ends_at, w.mode)
        for w in MaintenanceWindow.objects.not_over(now)[:MAX_WINDOWS]
    )
    if row is None:
        return StateSnapshot(windows=windows)
    return StateSnapshot(
        mode=row.mode,
        reason=row.reason,
        changed_by=row.changed_by,
        updated_at=row.updated_at,
        since=row.since,
        windows=windows,
    )


def _read_shared(store: BaseCache) -> StateSnapshot | None:
    try:
        data = store.get(shared_key())
    except Exception as error:  # the cache being down must not take the shield with it
        logger.warning("maintenance state: shared cache unreadable: %s", error)
        return None
    if not isinstance(data, dict):
        return None
    try:
        return StateSnapshot.from_dict(data)
    except (TypeError, KeyError):  # an entry written by another version: rebuild it
        return None


def _write_shared(store: BaseCache, snapshot: StateSnapshot) -> None:
    try:
        store.set(shared_key(), snapshot.as_dict(), timeout=SHARED_TTL)
    except Exception as error:
        logger.warning("maintenance state: could not update the shared cache: %s", error)


def _load() -> object:
    store = shared_cache()
    snapshot = _read_shared(store) if store is not None else None
    if snapshot is not None:
        return snapshot
    try:
        snapshot = load_from_database()
    except Exception as error:  # DatabaseError mostly; whatever it is, fail closed for writes
        logger.error("maintenance state unavailable (%s): refusing writes", error)
        return _UNAVAILABLE
    if store is not None:
        _write_shared(store, snapshot)
    return snapshot


def current_state() -> StateSnapshot:
    """The cached state; raises StateUnavailable when it cannot be read."""
    value = _local.get_or_load(_LOCAL_KEY, _load)
    if value is _UNAVAILABLE:
        # Not kept: the first write after the database returns must see the real state.
        _local.clear()
        raise StateUnavailable("the maintenance state cannot be read")
    return value  # type: ignore[return-value]


def current_mode() -> str:
    return current_state().mode


def clear_local() -> None:
    """Forget this process's copy (the next read goes to the shared cache or the database)."""
    _local.clear()


def forget() -> None:
    """Forget this process's copy and the shared entry."""
    clear_local()
    store = shared_cache()
    if store is not None:
        try:
            store.delete(shared_key())
        except Exception as error:
            logger.warning("maintenance state: could not clear the shared cache: %s", error)


def publish() -> StateSnapshot:
    """Push the committed state to the shared cache and this process's copy.

    The row lock orders concurrent publishers: whoever holds it reads the latest committed
    state, and a later change cannot commit (so cannot publish) until the lock is released.
    Without it, a slow publisher could overwrite a newer state with an older one.
    """
    with transaction.atomic():
        MaintenanceState.objects.select_for_update().filter(
            pk=MaintenanceState.SINGLETON_ID
        ).first()
        snapshot = load_from_database()
        store = shared_cache()
        if store is not None:
            _write_shared(store, snapshot)
        _local.set(_LOCAL_KEY, snapshot)  # under the lock too, for the same reason
    return snapshot


def publish_on_commit() -> None:
    # robust: a failed push is logged; readers still converge through the TTLs.
    transaction.on_commit(publish, robust=True)

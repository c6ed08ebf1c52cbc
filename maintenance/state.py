"""The maintenance state as the hot path sees it.

- **Reads** use a per-process copy that lives `MAINTENANCE_STATE_CACHE_SECONDS` (0.5 s by
  default): no query and no round trip on a normal read.
- **Writes** are judged by the authoritative state (`judge_write`): one Redis round trip when
  `REDIS_URL` is set, else a primary-key read of the singleton row. A switch publishes the new
  state to Redis before it returns, so every write admitted afterwards, by any process, is
  judged by the new mode.
- **Versions**: the row's `version` grows with every change. Redis and the per-process copy
  only ever take a newer version, so a reader that read the row before a publish cannot put
  the older state back, and two publishers cannot either, whatever their order.

If neither Redis nor the database answers, `current_state()` raises `StateUnavailable` and
`judge_write()` returns None: the shield then refuses writes and lets reads through.
"""

import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import status
from rest_framework.exceptions import APIException

from maintenance import inflight, shared
from maintenance.models import MaintenanceState, MaintenanceWindow, Mode

logger = logging.getLogger(__name__)

MAX_WINDOWS = 20
_NORMAL = Mode.NORMAL.value  # a plain str: enum attribute access costs on the hot path
_ROW_SQL = f"SELECT version, mode FROM {MaintenanceState._meta.db_table} WHERE id = %s"


class StateUnavailable(RuntimeError):
    """Neither Redis nor the database could say which mode the system is in."""


class StateNotPublished(APIException):
    """The change committed, but Redis could not be told: other processes may not see it."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = (
        "The mode was saved but could not be published to Redis, so other processes may still "
        "use the previous one. Run `manage.py maintenance_mode` once Redis answers."
    )
    default_code = "state_not_published"


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
    version: int = 0

    @property
    def is_normal(self) -> bool:
        return self.mode == _NORMAL

    def current_window(self, moment: datetime) -> WindowSpan | None:
        """The running window that ends last, if any."""
        running = [w for w in self.windows if w.starts_at <= moment < w.ends_at]
        return max(running, key=lambda w: w.ends_at, default=None)

    def next_window(self, moment: datetime) -> WindowSpan | None:
        return next((w for w in self.windows if w.starts_at > moment), None)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("updated_at", "since"):
            data[name] = _iso(data[name])
        data["windows"] = [
            {**w, "starts_at": _iso(w["starts_at"]), "ends_at": _iso(w["ends_at"])}
            for w in data["windows"]
        ]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "StateSnapshot":
        windows = tuple(
            WindowSpan(w["id"], _dt(w["starts_at"]), _dt(w["ends_at"]), w["mode"])  # type: ignore[arg-type]
            for w in data.get("windows", ())
        )
        moments = {name: _dt(data.get(name)) for name in ("updated_at", "since")}
        return cls(**{**data, **moments, "windows": windows})


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _dt(text: str | None) -> datetime | None:
    return parse_datetime(text) if text else None


class _LocalCopy:
    """This process's copy: fresh for the TTL; replaced only by the same or a newer version."""

    def __init__(self) -> None:
        self.snapshot: StateSnapshot | None = None
        self.expires = 0.0
        self.failed_until = 0.0
        self.lock = threading.Lock()

    def fresh(self) -> StateSnapshot | None:
        snapshot = self.snapshot
        return snapshot if snapshot is not None and self.expires > time.monotonic() else None

    def offer(self, snapshot: StateSnapshot, *, force: bool = False) -> StateSnapshot:
        """Keep `snapshot` unless a newer one is held; returns the one kept."""
        with self.lock:
            held = self.snapshot
            if force or held is None or snapshot.version >= held.version:
                self.snapshot = held = snapshot
            self.expires = time.monotonic() + settings.MAINTENANCE_STATE_CACHE_SECONDS
            self.failed_until = 0.0
            return held

    def clear(self) -> None:
        with self.lock:
            self.snapshot, self.expires, self.failed_until = None, 0.0, 0.0


_local = _LocalCopy()
_unpublished = False  # a publish from this process failed: the worker retries it


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
        version=row.version,
    )


def _refill_shared(snapshot: StateSnapshot) -> None:
    """Put what the database said into Redis, unless Redis already holds a newer version."""
    try:
        shared.store(snapshot.version, snapshot.mode, snapshot.as_json())
    except shared.SharedUnavailable as error:
        logger.warning("maintenance state: could not refill Redis: %s", error)


def _load() -> StateSnapshot:
    if shared.configured():
        try:
            data = shared.read()
        except shared.SharedUnavailable as error:
            logger.warning("maintenance state: Redis unreadable: %s", error)
            data = None
        snapshot = _from_shared(data)
        if snapshot is not None:
            return snapshot
    snapshot = load_from_database()
    if shared.configured():
        _refill_shared(snapshot)
    return snapshot


def _from_shared(data: dict[str, Any] | None) -> StateSnapshot | None:
    if data is None:
        return None
    try:
        return StateSnapshot.from_json(data)
    except (TypeError, KeyError, ValueError):  # an entry written by another version: rebuild it
        return None


def current_state() -> StateSnapshot:
    """The cached state, for reads; raises StateUnavailable when it cannot be read."""
    snapshot = _local.fresh()
    if snapshot is not None:
        return snapshot
    if _local.failed_until > time.monotonic():
        raise StateUnavailable("the maintenance state cannot be read")
    try:
        loaded = _load()
    except Exception as error:  # DatabaseError mostly; whatever it is, fail closed for writes
        logger.error("maintenance state unavailable (%s): refusing writes", error)
        _local.failed_until = time.monotonic() + settings.MAINTENANCE_STATE_CACHE_SECONDS
        raise StateUnavailable("the maintenance state cannot be read") from error
    return _local.offer(loaded)


def current_mode() -> str:
    return current_state().mode


@dataclass(frozen=True)
class WriteJudgement:
    """The state a write was judged by, and how to report that the write has ended."""

    state: StateSnapshot
    ticket: inflight.Ticket | None = None

    def done(self) -> None:
        if self.ticket is not None:
            self.ticket.release()


def judge_write() -> WriteJudgement | None:
    """The authoritative state for a write; None when it cannot be read (refuse the write).

    A write admitted in normal mode is counted until `done()`, so a switch can wait for it.
    """
    try:
        if shared.configured():
            try:
                return _judge_with_redis()
            except shared.SharedUnavailable as error:
                logger.warning(
                    "maintenance state: Redis unreadable, asking the database: %s", error
                )
        snapshot = _judge_with_database()
    except Exception as error:  # DatabaseError mostly; whatever it is, fail closed
        logger.error("maintenance state unavailable (%s): refusing writes", error)
        return None
    ticket = inflight.local_ticket() if snapshot.is_normal and not shared.configured() else None
    return WriteJudgement(snapshot, ticket)


def _judge_with_redis() -> WriteJudgement:
    held = _local.snapshot
    version = held.version if held is not None else -1
    admitted = shared.admit(version, count=True)
    if admitted is None:  # no entry yet: fill it from the database, then ask again
        _refill_shared(load_from_database())
        admitted = shared.admit(version, count=True)
        if admitted is None:
            raise shared.SharedUnavailable("the entry vanished")
    if admitted.data is not None:
        snapshot = _from_shared(admitted.data) or load_from_database()
        held = _local.offer(snapshot)
        if held.version != admitted.version:  # this process knows a newer one: trust Redis
            held = snapshot
    assert held is not None  # data is sent whenever this process holds no copy
    if held.mode != admitted.mode:
        held = StateSnapshot(mode=admitted.mode, version=admitted.version)
    ticket = inflight.RedisTicket(admitted.version) if admitted.counted else None
    return WriteJudgement(held, ticket)


def _judge_with_database() -> StateSnapshot:
    with connection.cursor() as cursor:  # plain SQL: the ORM would cost more than the query
        cursor.execute(_ROW_SQL, [MaintenanceState.SINGLETON_ID])
        row = cursor.fetchone()
    version, mode = row if row is not None else (0, _NORMAL)
    held = _local.snapshot
    if held is not None and (held.version, held.mode) == (version, mode):
        return held
    return _local.offer(load_from_database(), force=True)


def clear_local() -> None:
    """Forget this process's copy (the next read goes to Redis or the database)."""
    _local.clear()


def forget() -> None:
    """Forget this process's copy, a failed publish, and the Redis entry (tests)."""
    global _unpublished
    _unpublished = False
    clear_local()
    shared.delete()


def publish(*, force: bool = False) -> StateSnapshot:
    """Push the committed state to Redis and this process's copy; raises StateNotPublished.

    An older version never replaces a newer one (`force` does, after a database restore).
    """
    global _unpublished
    snapshot = load_from_database()
    if shared.configured():
        try:
            shared.store(snapshot.version, snapshot.mode, snapshot.as_json(), force=force)
        except shared.SharedUnavailable as error:
            logger.error(
                "maintenance state: could not publish version %s: %s", snapshot.version, error
            )
            _local.offer(snapshot, force=force)
            _unpublished = True
            raise StateNotPublished() from error
    _unpublished = False
    return _local.offer(snapshot, force=force)


def publish_if_behind() -> int:
    """Publish again after a failed publish in this process (the worker calls it each loop)."""
    if not _unpublished:
        return 0
    publish()
    logger.info("maintenance state: published after an earlier failure")
    return 1


def publish_on_commit() -> None:
    """Publish once the change commits; a failure reaches the caller (the switch did not reach
    every process), so the switch never returns success before every process can see it."""
    transaction.on_commit(publish)


def next_version(previous: int) -> int:
    """Microseconds since the epoch, or one more than before: larger than any earlier
    version, even after a database restore brought an older row back."""
    return max(previous + 1, time.time_ns() // 1000)

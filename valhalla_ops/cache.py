"""A small in-process cache with a time-to-live and a size bound (for the hot path)."""

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")
_MISSING = object()


class LocalTTLCache(Generic[V]):
    """Values live `ttl` seconds; the oldest go first past `maxsize`. Thread-safe."""

    def __init__(self, *, ttl: Callable[[], float], maxsize: int = 10_000) -> None:
        self.ttl = ttl  # read at call time so settings overrides apply
        self.maxsize = maxsize
        self._data: OrderedDict[object, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: object, default: V | None = None) -> V | None:
        entry = self._data.get(key)
        if entry is None or entry[0] < time.monotonic():
            return default
        return entry[1]

    def set(self, key: object, value: V) -> None:
        expires = time.monotonic() + self.ttl()
        with self._lock:
            self._data[key] = (expires, value)
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def get_or_load(self, key: object, load: Callable[[], V]) -> V:
        value = self.get(key, _MISSING)  # type: ignore[arg-type]
        if value is _MISSING:
            value = load()
            self.set(key, value)
        return value  # type: ignore[return-value]

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

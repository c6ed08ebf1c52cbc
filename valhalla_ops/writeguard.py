"""Which writes a request may make while the system is not in normal mode.

The maintenance app's database backstop refuses ORM writes from requests that the shield
did not exempt. System bookkeeping (an API key's last use, a rate-limit snapshot, the
audit row of an exempt change) runs inside `bookkeeping()` and is always allowed.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_bookkeeping: ContextVar[bool] = ContextVar("valhalla_bookkeeping", default=False)


@contextmanager
def bookkeeping() -> Iterator[None]:
    token = _bookkeeping.set(True)
    try:
        yield
    finally:
        _bookkeeping.reset(token)


def is_bookkeeping() -> bool:
    return _bookkeeping.get()

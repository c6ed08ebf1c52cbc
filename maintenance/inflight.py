"""Writes admitted in normal mode that are still running, so a switch can wait for them.

- With Redis: the shield's one round trip counts the write under the state's version
  (`maintenance.shared`), and the request's end takes it back.
- Without Redis (one server process, see gunicorn.conf.py): every such write holds a shared
  `flock` on a lock file of the database for its duration; waiting takes the lock exclusively.
  The kernel drops the locks of a process that dies, so a crash never leaves a count behind.
"""

import fcntl
import hashlib
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.db import connection

from maintenance import shared

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.02


class Ticket(Protocol):
    def release(self) -> None: ...


class RedisTicket:
    def __init__(self, version: int) -> None:
        self.version = version

    def release(self) -> None:
        shared.release(self.version)


class LocalTicket:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)


def lock_path() -> Path:
    """One lock file per project directory and database."""
    ident = f"{settings.BASE_DIR}|{connection.settings_dict.get('NAME')}"
    digest = hashlib.sha256(ident.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"valhalla-ops-writes-{digest}.lock"


_thread = threading.local()


def _thread_fd(path: Path) -> int:
    """This thread's descriptor on the lock file (a lock belongs to the open file)."""
    fds: dict[Path, int] = getattr(_thread, "fds", None) or {}
    _thread.fds = fds
    if path not in fds:
        fds[path] = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    return fds[path]


def local_ticket() -> LocalTicket | None:
    """Hold the shared lock while this write runs; None (logged) if the file is unusable."""
    try:
        fd = _thread_fd(lock_path())
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError as error:
        logger.warning("maintenance: cannot track a running write: %s", error)
        return None
    return LocalTicket(fd)


def wait_for_writes(version: int, *, timeout: float) -> bool:
    """Wait until no write admitted under `version` (normal mode) is running; False on timeout."""
    deadline = time.monotonic() + timeout
    if shared.configured():
        while shared.inflight(version) > 0:
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_SECONDS)
        return True
    return _wait_local(deadline)


def _wait_local(deadline: float) -> bool:
    fd = os.open(lock_path(), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(POLL_SECONDS)
                continue
            fcntl.flock(fd, fcntl.LOCK_UN)
            return True
    finally:
        os.close(fd)

"""The background worker: runs every registered step in a loop until SIGTERM."""

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType

from django.db import close_old_connections

from valhalla_ops.metrics import worker_items, worker_step_seconds

logger = logging.getLogger(__name__)

Step = tuple[str, Callable[[], int]]

# Set on SIGTERM/SIGINT: steps that work through a batch check it between items, so the
# worker stops after the item in hand rather than after the whole batch.
_stop_requested = threading.Event()


def stop_requested() -> bool:
    return _stop_requested.is_set()


# Called when a worker's loop ends, in its thread: steps that keep work in flight between
# turns (notify's deliveries) finish it here.
_at_stop: list[Callable[[], None]] = []


def at_stop(callback: Callable[[], None]) -> None:
    if callback not in _at_stop:
        _at_stop.append(callback)


def run_stop_callbacks() -> None:
    for callback in _at_stop:
        try:
            callback()
        except Exception:  # one failing callback must not skip the others
            logger.exception("worker stop callback %s failed", callback)


class Worker:
    def __init__(self, steps: Sequence[Step], *, interval: float) -> None:
        self.steps = steps
        self.interval = interval
        self.stopping = threading.Event()
        self.handled = 0

    def run(self, *, once: bool = False) -> int:
        """Loop over the steps; with `once`, stop when every queue is drained."""
        _stop_requested.clear()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        try:
            while not self.stopping.is_set():
                close_old_connections()
                if self.run_steps():
                    continue
                if once:
                    break
                self.stopping.wait(self.interval)  # SIGTERM wakes this at once
        finally:
            run_stop_callbacks()
        return self.handled

    def run_steps(self) -> int:
        """One pass over every step; returns how many items they handled."""
        total = 0
        for name, step in self.steps:
            if self.stopping.is_set():
                break
            total += self.run_step(name, step)
        self.handled += total
        return total

    def run_step(self, name: str, step: Callable[[], int]) -> int:
        started = time.perf_counter()
        try:
            count = step()
        except Exception:  # one broken step must not stop the others
            logger.exception("worker step %s failed", name)
            return 0
        finally:
            worker_step_seconds.labels(name).observe(time.perf_counter() - started)
        if count:
            worker_items.labels(name).inc(count)
            logger.info("worker step %s handled %s item(s)", name, count)
        return count

    def stop(self, signum: int, frame: FrameType | None) -> None:
        logger.info("worker stopping after the item in hand (signal %s)", signum)
        self.stopping.set()
        _stop_requested.set()

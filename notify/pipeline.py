"""Many deliveries in flight per worker: claimed rows wait in memory, sender threads drain them.

The calling thread does every database query: it claims rows in large batches and records
finished results in batches. NOTIFY_CONCURRENCY sender threads do the network, taking the
next row they may start as soon as they are free, so the database's latency never idles a
slot. A webhook or SMS is one task; the emails of one claim go out in tasks of up to 32,
each over one SMTP connection. No channel has more than NOTIFY_CHANNEL_CONCURRENCY tasks
running, so a slow receiver holds only its share of the slots and other channels keep their
speed.

Deliveries may still be in flight when `run()` returns (the worker's other steps take their
turn meanwhile): their results are recorded by the next `run()`, or by `finish()` when the
worker stops.
"""

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from notify.models import NotificationOutbox
from valhalla_ops.worker import stop_requested

logger = logging.getLogger(__name__)

STOP = object()  # what a sender gets when it should end
KEEP_LEASE = object()  # the result of a row whose task crashed: its lease brings it back
POLL_SECONDS = 0.1  # how often to look for new rows while only slow deliveries are in flight
ROUND_SECONDS = 0.2  # at most this long between two database rounds while work is in flight
HOLD = 8  # rows claimed (running and waiting) per slot
# A channel with SHARE times its cap in rows claimed gets no more until some are done; a row
# that waits long behind a slow receiver has its lease renewed.
SHARE = 8
EMAILS_PER_CONNECTION = 32  # a claim's emails go out over one SMTP connection per 32

Row = NotificationOutbox
Result = tuple[Row, uuid.UUID, object]


@dataclass(eq=False)
class Task:
    rows: list[Row]
    token: uuid.UUID
    channel_id: int | None  # None: an email batch, which no channel cap applies to


class Pipeline:
    """One per worker thread: its claimed rows, its sender threads, their results."""

    def __init__(self, hooks: "Hooks") -> None:
        self.hooks = hooks
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)  # the calling thread waits on it
        self.work = threading.Condition(self.lock)  # the senders wait on it
        # Shared with the senders (under `cond`):
        self.held: list[tuple[Row, uuid.UUID]] = []
        self.finished: list[Result] = []
        self.running: Counter[int] = Counter()  # tasks running, by channel
        self.busy = 0  # tasks running
        self.senders = 0
        # The calling thread's own:
        self.per_channel: Counter[int] = Counter()  # rows claimed and not yet recorded
        self.claimed_at: dict[int, float] = {}  # when a waiting row's lease was last set
        self.failed: set[int] = set()  # rows that failed during this run: not retaken in it
        self.channels: dict = {}  # the channels of this run's rows, each loaded once
        self.last_round = 0.0
        self.closed = False

    def run(self, *, limit: int) -> int:
        """Take on up to `limit` rows; returns how many. 0 means nothing due, nothing in flight."""
        taken, drained, nothing_due = 0, False, False
        self.failed, self.channels = set(), {}
        self.start_senders()
        while True:
            if stop_requested():
                self.finish()
                return taken
            recently = time.monotonic() - self.last_round < POLL_SECONDS
            if self.round_due(hungry=taken < limit and not (drained and recently)):
                self.record()
                idle = self.idle()  # nothing claimed is left: no channel is excluded
                self.renew_held()
                room = min(HOLD * settings.NOTIFY_CONCURRENCY - self.load(), limit - taken)
                claimed = self.claim(room) if room > 0 else 0
                self.last_round = time.monotonic()
                taken += claimed
                drained = claimed < room
                nothing_due = idle and drained
            with self.cond:
                done = not self.held and (taken >= limit or (nothing_due and not self.busy))
                if not done:
                    self.cond.wait(POLL_SECONDS if drained else ROUND_SECONDS)
            if done:
                self.record()
                return taken

    def idle(self) -> bool:
        with self.cond:
            return not self.busy and not self.held and not self.finished

    def load(self) -> int:
        return sum(self.per_channel.values())

    def round_due(self, *, hungry: bool) -> bool:
        """Whether to go to the database now: results pile up, or work runs low (`hungry`)."""
        slots = settings.NOTIFY_CONCURRENCY
        with self.cond:
            return (
                not self.busy
                or len(self.finished) >= 2 * slots
                or (hungry and len(self.held) < slots)
                or time.monotonic() - self.last_round >= ROUND_SECONDS
            )

    def claim(self, room: int) -> int:
        """Claim up to `room` rows of channels below their share; they wait in `held`."""
        share = SHARE * settings.NOTIFY_CHANNEL_CONCURRENCY
        full = [channel for channel, count in self.per_channel.items() if count >= share]
        token, rows = self.hooks.claim_rows(room, full, sorted(self.failed), self.channels)
        now, waiting, ready = time.monotonic(), [], []
        for row in rows:
            self.per_channel[row.channel_id] += 1  # until its result is recorded
            if row.channel.active:
                waiting.append((row, token))
                self.claimed_at[row.pk] = now
            else:
                ready.append((row, token, self.hooks.inactive(row)))
        with self.cond:
            self.held += waiting
            self.finished += ready
            self.work.notify(len(waiting))
        return len(rows)

    def renew_held(self) -> None:
        """Renew the leases of rows that have waited a third of the lease (a slow receiver)."""
        now = time.monotonic()
        old = now - settings.NOTIFY_LEASE_SECONDS / 3
        with self.cond:
            stale = [(row, token) for row, token in self.held if self.claimed_at[row.pk] <= old]
        if stale:
            self.hooks.renew(stale)
            for row, _token in stale:
                self.claimed_at[row.pk] = now

    def record(self) -> None:
        """Write every finished result in one round."""
        with self.cond:
            results, self.finished = self.finished, []
        for row, _token, _outcome in results:
            self.per_channel[row.channel_id] -= 1
            self.claimed_at.pop(row.pk, None)
        self.per_channel = +self.per_channel  # drop the channels with nothing left
        if results:
            self.failed |= self.hooks.record(results)

    def finish(self) -> None:
        """Release the waiting rows, wait for the running ones (each bounded by its timeout),
        and record them all."""
        with self.cond:
            self.finished += [(row, token, None) for row, token in self.held]
            self.held = []
            self.cond.wait_for(lambda: not self.busy)
        self.record()

    # --- the sender threads ---------------------------------------------------------------

    def start_senders(self) -> None:
        with self.cond:
            missing = settings.NOTIFY_CONCURRENCY - self.senders
            self.senders += max(missing, 0)
            if missing < 0:
                self.work.notify_all()  # the setting shrank: the senders beyond it end
        for _ in range(missing):
            threading.Thread(target=self.send_loop, name="notify-sender", daemon=True).start()

    def send_loop(self) -> None:
        while True:
            with self.work:
                task = self.work.wait_for(self.next_task)
            if task is STOP:
                return
            assert isinstance(task, Task)
            self.done(task, self.deliver(task))

    def next_task(self) -> object:
        """The next task a sender may start; STOP when there are too many senders."""
        if self.closed or self.senders > settings.NOTIFY_CONCURRENCY:
            self.senders -= 1
            self.work.notify()  # pass the wake-up on: it may have been meant for a task
            return STOP
        cap = settings.NOTIFY_CHANNEL_CONCURRENCY
        for index, (row, token) in enumerate(self.held):
            if row.channel.channel_type == "email":
                batch = [
                    r for r, t in self.held if t == token and r.channel.channel_type == "email"
                ][:EMAILS_PER_CONNECTION]
                taken = {r.pk for r in batch}
                self.held = [(r, t) for r, t in self.held if r.pk not in taken]
                task = Task(batch, token, None)
                break
            if self.running[row.channel_id] < cap:
                del self.held[index]
                task = Task([row], token, row.channel_id)
                break
        else:
            return None
        self.busy += 1
        if task.channel_id is not None:
            self.running[task.channel_id] += 1
        return task

    def deliver(self, task: Task) -> list:
        try:
            outcomes = self.hooks.deliver(task.rows, task.token)
            if len(outcomes) != len(task.rows):
                raise RuntimeError(f"{len(outcomes)} outcomes for {len(task.rows)} rows")
            return outcomes
        except Exception:  # a bug in the delivery code: the rows come back when the lease ends
            logger.exception("a delivery task failed; its rows wait for their lease to expire")
            return [KEEP_LEASE] * len(task.rows)

    def done(self, task: Task, outcomes: list) -> None:
        with self.cond:
            self.busy -= 1
            if task.channel_id is not None:
                self.running[task.channel_id] -= 1
            self.finished += [
                (row, task.token, o) for row, o in zip(task.rows, outcomes, strict=True)
            ]
            self.cond.notify()
            self.work.notify()  # a channel below its cap again may have rows waiting


@dataclass(frozen=True)
class Hooks:
    """What the pipeline calls: the dispatcher's claim, delivery and bookkeeping."""

    claim_rows: Callable[[int, list[int], list[int], dict], tuple[uuid.UUID, list[Row]]]
    deliver: Callable[[list[Row], uuid.UUID], list]
    inactive: Callable[[Row], object]
    record: Callable[[list[Result]], set[int]]  # -> the rows that failed
    renew: Callable[[list[tuple[Row, uuid.UUID]]], None]


_local = threading.local()


def current(hooks: Hooks) -> Pipeline:
    """This thread's pipeline."""
    pipeline = getattr(_local, "pipeline", None)
    if pipeline is None:
        pipeline = _local.pipeline = Pipeline(hooks)
    return pipeline


def close_current(*, record: bool = True) -> None:
    """Finish this thread's pipeline (recording its results unless told not to) and end its
    senders; the next run starts a new one."""
    pipeline = getattr(_local, "pipeline", None)
    if pipeline is None:
        return
    _local.pipeline = None
    if record:
        pipeline.finish()
    with pipeline.cond:
        pipeline.held = []
        pipeline.cond.wait_for(lambda: not pipeline.busy)
        pipeline.closed = True
        pipeline.work.notify_all()

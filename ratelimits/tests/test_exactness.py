"""Exact counting against the real Redis: 10,000 keys, two processes of two threads each."""

import multiprocessing
import threading
import time
from multiprocessing.connection import Connection
from types import SimpleNamespace

import pytest

from ratelimits.limiter import check
from ratelimits.ruleset import Identity, RuleSet
from ratelimits.store import RedisStore

LIMIT = 2
KEYS = 10_000
PROCESSES = 2
THREADS = 2
WORKERS = PROCESSES * THREADS


def address(number: int) -> str:
    return f"10.{number // 65536}.{number // 256 % 256}.{number % 256}"


def requests_of(number: int) -> int:
    """The first half of the clients send exactly their limit, the second half one more."""
    return LIMIT if number < KEYS // 2 else LIMIT + 1


def work_of(worker: int) -> list[int]:
    """The requests a worker sends: the n-th request of a client goes to worker (client + n) %
    WORKERS, so every client is counted by several workers at about the same moment."""
    return [
        number
        for number in range(KEYS)
        for nth in range(requests_of(number))
        if (number + nth) % WORKERS == worker
    ]


def one_process(redis_url: str, process: int, now: float, start: float, pipe: Connection) -> None:
    store = RedisStore(redis_url, timeout=10.0)
    rules = RuleSet.build(
        [SimpleNamespace(id=77, scope="ip", key="*", window_seconds=3600, max_requests=LIMIT)]
    )
    admitted: list[list[int]] = [[] for _ in range(THREADS)]
    go = threading.Barrier(THREADS)

    def one_thread(thread: int) -> None:
        go.wait()
        while time.time() < start:  # both processes start together
            time.sleep(0.001)
        for number in work_of(process * THREADS + thread):
            decision = check(rules, Identity(ip=address(number)), now=now, store=store)
            if decision is not None and decision.allowed:
                admitted[thread].append(number)

    threads = [threading.Thread(target=one_thread, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pipe.send([n for batch in admitted for n in batch])
    pipe.close()
    store.close()


@pytest.mark.real_clock
def test_10000_keys_never_over_the_limit_and_admitted_in_full(redis_url, redis_client):
    context = multiprocessing.get_context("fork")
    now = time.time()  # one window for the whole test, however long it takes
    start = time.time() + 1.0
    pipes, processes = [], []
    for process in range(PROCESSES):
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(target=one_process, args=(redis_url, process, now, start, sender))
        child.start()
        sender.close()
        pipes.append(receiver)
        processes.append(child)
    admitted = [n for receiver in pipes for n in receiver.recv()]
    for child in processes:
        child.join(timeout=60)

    per_key = [0] * KEYS
    for number in admitted:
        per_key[number] += 1
    assert [child.exitcode for child in processes] == [0] * PROCESSES
    assert max(per_key) <= LIMIT  # never over, across processes and threads
    assert sum(per_key) / (KEYS * LIMIT) >= 0.99
    assert per_key == [LIMIT] * KEYS  # in fact every request within the limit got through
    store = RedisStore(redis_url, timeout=10.0)
    try:
        (excess,) = store.excess(top=1)
    finally:
        store.close()
    assert excess.keys_over == KEYS // 2  # one over for each client that sent one more

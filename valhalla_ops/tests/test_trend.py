"""Per-minute counts of 429s and 503s: counted in memory, stored in the cache, never a query."""

import time

import pytest
from django.core.cache import cache

from valhalla_ops import trend


@pytest.fixture(autouse=True)
def _fresh_counts():
    trend.forget()
    yield
    trend.forget()


def test_refused_responses_are_counted_per_minute(db, django_assert_num_queries):
    trend.record(429)
    trend.record(429)
    trend.record(503)

    with django_assert_num_queries(0):
        limited = trend.last_hour(429)
        unavailable = trend.last_hour(503)

    assert len(limited) == trend.MINUTES
    assert limited[-1] == 2
    assert sum(limited) == 2
    assert unavailable[-1] == 1


def test_counts_of_earlier_minutes_stay_in_their_minute():
    now = time.time()
    cache.set(trend.key(429, int((now - 60) // 60)), 5)

    counts = trend.last_hour(429, now=now)

    assert counts[-2] == 5
    assert counts[-1] == 0


def test_a_failing_cache_drops_the_counts_without_raising(monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "add", broken)
    monkeypatch.setattr(cache, "get_many", broken)
    trend.record(503)

    assert trend.last_hour(503) == [0] * trend.MINUTES


def test_a_flush_waits_for_its_interval(monkeypatch):
    monkeypatch.setattr(trend, "FLUSH_SECONDS", 3600.0)
    trend.flush()
    trend.record(429)

    trend.maybe_flush()  # within FLUSH_SECONDS of the last flush: stays in memory

    assert sum(trend._pending.values()) == 1


def test_a_cache_error_pauses_the_flushes(monkeypatch):
    calls = []

    def broken(*args, **kwargs):
        calls.append(args)
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "add", broken)
    trend.record(429)
    trend.record(503)
    trend.maybe_flush()
    trend.record(429)

    trend.maybe_flush()  # within FAILURE_PAUSE of the failure: no second attempt

    assert len(calls) == 1
    assert sum(trend._pending.values()) == 1

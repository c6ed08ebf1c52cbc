"""Microseconds the dashboard's per-minute counts of 429s and 503s add to a response.

`RequestContextMiddleware.count()` calls `trend.maybe_flush()` for every response (a check
that nothing waits, or that the flush interval has not passed) and `trend.record(status)` for
a 429 or a 503 (a lock and a dict increment). Both are timed against the response counter's
own increment (`http_responses` child `.inc()`, section 5), in the same interleaved rounds,
plus an empty call (the cost of the timing loop). A flush (one `cache.add` + `cache.incr` per
status and minute, at most every 5 seconds per process) is not in the loop: it is timed once
per round on the local-memory cache, and is shared by every response of those 5 seconds.

    .venv/bin/python bench/trend_cost.py                      # 9 rounds of 0.3 s per candidate
    .venv/bin/python bench/trend_cost.py --rounds 15 --seconds 0.5

No database, no Redis: Django is set up with the embedded default's local-memory cache.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (median)")
    parser.add_argument("--seconds", type=float, default=0.3, help="seconds per candidate/round")
    parser.add_argument("--max-ops", type=int, default=3_000_000, help="cap per candidate/round")
    args = parser.parse_args()
    common.check_rounds(parser, args)
    return args


def main() -> None:
    args = parse_args()
    env = {**os.environ, **common.BENCH_ENV, "DATABASE_URL": "sqlite:///:memory:", "REDIS_URL": ""}
    common.setup_django("valhalla_ops.settings", env)
    from valhalla_ops import metrics, trend

    child = metrics.http_responses.labels("GET", "2xx", "bench")
    trend.FLUSH_SECONDS = 3600.0  # the loop measures the check; flushes are timed apart
    trend.flush()
    jobs = {
        "empty call": lambda: None,
        "counter .inc()": child.inc,
        "maybe_flush() (every response)": trend.maybe_flush,
        "record(429) (a refused response)": lambda: trend.record(429),
    }
    print("bench/trend_cost.py")
    for line in common.machine():
        print("  " + line)
    print(f"  load average: {common.load_average()}")
    print(f"  {args.rounds} interleaved rounds x {args.seconds} s (at most {args.max_ops} ops)")
    rates = common.interleaved(jobs, rounds=args.rounds, seconds=args.seconds, max_ops=args.max_ops)
    flushes = []
    for _ in range(args.rounds):
        trend.record(429)
        trend.record(503)
        start = time.perf_counter()
        trend.flush()
        flushes.append((time.perf_counter() - start) * 1e6)
    report(rates, list(jobs), statistics.median(flushes))
    trend.forget()
    print(f"\n  load average at the end: {common.load_average()}")


def report(rates: dict[str, common.Rate], names: list[str], flush_us: float) -> None:
    empty, counter = rates[names[0]], rates[names[1]]
    print(f"\n  {'':34} {'us/call':>8} {'CPU us':>8} {'minus loop':>11}")
    for name in names:
        rate = rates[name]
        print(f"  {name:34} {rate.us:8.3f} {rate.cpu_us:8.3f} {rate.us - empty.us:11.3f}")
    print("  time per call / the counter's .inc() (median of the per-round ratios)")
    for name in names[2:]:
        paired = common.paired_ratio(counter, rates[name])
        print(f"  {name:34} {paired:6.2f}x")
    print(f"  one flush of two statuses (local-memory cache): {flush_us:.1f} us (median)")


if __name__ == "__main__":
    main()

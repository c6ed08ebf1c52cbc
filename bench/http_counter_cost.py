"""Microseconds per request of RequestContextMiddleware, with and without its response counter.

`RequestContextMiddleware` counts every response in `valhalla_http_responses_total` by method,
status class and view: a dict lookup of the counter's child it bound for that label tuple, then
`inc()`. A RequestFactory request (`GET /system/ratelimits/rules` from 127.0.0.1, no
X-Request-ID: a uuid4 is made) goes through the middleware around a trivial view, in the same
interleaved rounds as:

- view alone:           the trivial view called directly (the loop and the view).
- counter off:          the same middleware with `count()` replaced by a method that does
                        nothing (the empty call stays: about 0.05 us).
- counter:              the project's middleware; `request.resolver_match` is set, as Django's
                        handler sets it before the view runs.
- counter, multiprocess: the same, its counter children built with prometheus-client's
                        multiprocess value (an mmap file in a temporary directory), as under
                        PROMETHEUS_MULTIPROC_DIR.
- counter, resolved here: no `resolver_match` (a response a middleware gave before URL
                        resolution, such as a 429 or a shield 503): the counter looks the path's
                        view up in its LRU cache of resolved paths.
- counter, new path:    the same with that cache emptied before each request: a full `resolve()`.

The ratio is counter / counter off, time per request (median of the per-round ratios, the
ratio of the medians in brackets).

    .venv/bin/python bench/http_counter_cost.py              # 9 rounds of 0.3 s per candidate
    .venv/bin/python bench/http_counter_cost.py --rounds 15 --seconds 0.5

No database, no Redis: the project's settings with DEBUG off, and the SQLite default untouched.
The request object is reused (as in bench/middleware_cost.py).
"""

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common
from bench.metrics_cost import value_class

PATH = "/system/ratelimits/rules"
VIEW = "ratelimitrule-list"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (median)")
    parser.add_argument("--seconds", type=float, default=0.3, help="seconds per candidate/round")
    parser.add_argument("--max-ops", type=int, default=1_000_000, help="cap per candidate/round")
    args = parser.parse_args()
    common.check_rounds(parser, args)
    return args


def make_request(*, resolved: bool) -> Any:
    from django.test import RequestFactory
    from django.urls import resolve

    request = RequestFactory().get(PATH, REMOTE_ADDR="127.0.0.1", HTTP_HOST="127.0.0.1")
    request.resolver_match = resolve(PATH) if resolved else None
    return request


def multiprocess_middleware(directory: Path) -> Any:
    """The project's middleware whose counter children write to a multiprocess mmap file."""
    from prometheus_client import Counter, values

    from valhalla_ops import metrics
    from valhalla_ops.middleware import RequestContextMiddleware

    real = metrics.http_responses
    middleware = RequestContextMiddleware(common.trivial_view)
    # A child's value class is chosen when `labels()` makes it: bind it inside.
    with value_class(values.MultiProcessValue(), directory):
        metrics.http_responses = Counter(
            real._name, real._documentation, real._labelnames, registry=None
        )
        try:
            middleware(make_request(resolved=True))
        finally:
            metrics.http_responses = real
    (child,) = middleware.children.values()
    common.expect(child._value._multiprocess, "the multiprocess child is not mmapped")
    return middleware


def candidates(directory: Path) -> tuple[dict[str, Callable[[], object]], Any]:
    """The timed calls, and the multiprocess middleware (to check its file counts)."""
    from valhalla_ops.middleware import RequestContextMiddleware, resolved_view

    class CounterOff(RequestContextMiddleware):
        def count(self, request: Any, status: int) -> None:
            pass

    resolved, unresolved = make_request(resolved=True), make_request(resolved=False)
    off = CounterOff(common.trivial_view)
    counting = RequestContextMiddleware(common.trivial_view)
    multi = multiprocess_middleware(directory)
    jobs = {
        "view alone": lambda: common.trivial_view(resolved),
        "counter off": lambda: off(resolved),
        "counter": lambda: counting(resolved),
        "counter, multiprocess": lambda: multi(resolved),
        "counter, resolved here": lambda: counting(unresolved),
        "counter, new path": lambda: (resolved_view.cache_clear(), counting(unresolved))[1],
    }
    return jobs, multi


def counted() -> float:
    """The project counter's value for the rules list (not a registry scrape: no gauge query)."""
    from valhalla_ops import metrics

    return metrics.http_responses.labels("GET", "2xx", VIEW)._value.get()


def check(jobs: dict[str, Callable[[], object]], multi: Any) -> None:
    """The counting candidates count, under the rules list's view; the others do not."""
    (child,) = multi.children.values()
    for name, job in jobs.items():
        before, before_multi = counted(), child._value.get()
        response = job()
        common.expect(response.status_code == 200, f"{name}: status {response.status_code}")
        expected = 1 if name in {"counter", "counter, resolved here", "counter, new path"} else 0
        common.expect(counted() - before == expected, f"{name}: counted {counted() - before}")
        expected = 1 if name == "counter, multiprocess" else 0
        common.expect(child._value.get() - before_multi == expected, f"{name}: mmap count")


def report(rates: dict[str, common.Rate]) -> None:
    base = rates["view alone"].us
    print(f"\n  {'':26} {'us/request':>10} {'CPU us':>8} {'minus view':>11}")
    for name, rate in rates.items():
        print(f"  {name:26} {rate.us:10.3f} {rate.cpu_us:8.3f} {rate.us - base:11.3f}")
    off = rates["counter off"]
    print("  counter / counter off, time per request (median of the per-round ratios)")
    for name in list(rates)[2:]:
        paired = common.paired_ratio(off, rates[name])  # ops/s off over ops/s on
        medians = common.ratio(off.ops, rates[name].ops)
        wall, cpu = rates[name].us - off.us, rates[name].cpu_us - off.cpu_us
        print(
            f"  {name:26} {paired:6.3f}x ({medians:5.3f}x)   added {wall:6.3f} us (CPU {cpu:6.3f})"
        )


def main() -> None:
    args = parse_args()
    for name in ("DATABASE_URL", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR"):
        os.environ.pop(name, None)  # the SQLite default (never opened) and in-memory counters
    common.setup_django("valhalla_ops.settings", {**common.BENCH_ENV})
    directory = Path(tempfile.mkdtemp(prefix="http_counter_cost-"))
    print("bench/http_counter_cost.py")
    for line in common.machine():
        print("  " + line)
    print(f"  load average: {common.load_average()}")
    print(f"  {args.rounds} interleaved rounds x {args.seconds} s (at most {args.max_ops} ops)")
    try:
        jobs, multi = candidates(directory)
        check(jobs, multi)
        rates = common.interleaved(
            jobs, rounds=args.rounds, seconds=args.seconds, max_ops=args.max_ops
        )
        report(rates)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"\n  load average at the end: {common.load_average()}")


if __name__ == "__main__":
    main()

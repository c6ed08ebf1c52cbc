"""Microseconds per request of the enforcement middleware, in process, over a trivial view.

A RequestFactory request (`GET /bench/ping` from 127.0.0.1 with an `X-API-Key`) goes through
`ReadOnlyShieldMiddleware` and/or `RateLimitMiddleware` with a `get_response` that returns a
new `HttpResponse`; the same trivial view called directly is the baseline, measured in the same
group of interleaved rounds. Overhead = us(candidate) - us(baseline). The rules come from the
database through the project's cached rule set (`current_rules()`), exactly as in production;
the counters go to Redis (REDIS_URL) or, with REDIS_URL unset, to local memory.

Groups (each with its own rules in the database and its own baseline):
- no rule:   the shield alone; rate limiting with no rule at all (nothing to count).
- 1 rule:    `global *`: the rate limiter alone, and shield + rate limiter (Redis).
- 3 rules:   `ip *`, `api_key *`, `global *` (the API key is resolved through the cached
             lookup DRF's authentication uses), Redis.
- the 1-rule and 3-rule groups again with local-memory counters.
- DRF's `ApiKeyAuthentication.authenticate()` alone (the third thing the HTTP benchmark turns
  on; it runs in the view, not in middleware).

It also counts the database queries of 1000 requests per group (the rule set is cached: 0 with
Redis; with local memory the rules are re-read once per RATELIMIT_RULES_CACHE_SECONDS).

    .venv/bin/python bench/middleware_cost.py                # 9 rounds of 0.3 s per candidate
    .venv/bin/python bench/middleware_cost.py --rounds 7 --seconds 1

The request object is reused, so the cost of building `request.headers` (once per request in
production, shared with DRF's authentication) is not counted. Uses the PostgreSQL database of
bench/http_overhead.py (DATABASE_URL, default .../valhalla_ops_bench; created and migrated here).
"""

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common

RULE_MAX = 1_000_000_000
QUERY_SAMPLE = 1000
GLOBAL = [("global", "*")]
THREE = [("ip", "*"), ("api_key", "*"), ("global", "*")]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (median)")
    parser.add_argument("--seconds", type=float, default=0.3, help="seconds per candidate/round")
    parser.add_argument("--max-ops", type=int, default=500_000, help="cap per candidate/round")
    parser.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL", common.DEFAULT_DATABASE_URL)
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", common.DEFAULT_REDIS_URL)
    )
    args = parser.parse_args()
    common.check_rounds(parser, args)
    return args


def chains() -> dict[str, Callable[[Any], Any]]:
    from maintenance.middleware import ReadOnlyShieldMiddleware
    from ratelimits.middleware import RateLimitMiddleware

    return {
        "baseline (view alone)": common.trivial_view,
        "shield": ReadOnlyShieldMiddleware(common.trivial_view),
        "rate limiter": RateLimitMiddleware(common.trivial_view),
        "shield + rate limiter": ReadOnlyShieldMiddleware(RateLimitMiddleware(common.trivial_view)),
    }


def make_request(key: str) -> Any:
    from django.test import RequestFactory

    request = RequestFactory().get(
        "/bench/ping", REMOTE_ADDR="127.0.0.1", HTTP_HOST="127.0.0.1", HTTP_X_API_KEY=key
    )
    request.client_ip = "127.0.0.1"  # as RequestContextMiddleware sets it
    return request


def use_rules(specs: list[tuple[str, str]]) -> None:
    from ratelimits.ruleset import current_rules, invalidate

    common.set_rules(specs, max_requests=RULE_MAX)
    invalidate()
    current_rules()


def check_headers(chain: Callable[[Any], Any], request: Any, rules: int) -> None:
    response = chain(request)
    common.expect(response.status_code == 200, f"status {response.status_code}")
    if rules:
        common.expect(
            f"limit={RULE_MAX}" in response.get("RateLimit", ""),
            f"no RateLimit header with {rules} rule(s): {dict(response.headers)}",
        )
    else:
        common.expect("RateLimit" not in response, "a RateLimit header without any rule")


def count_queries(chain: Callable[[Any], Any], request: Any) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        for _ in range(QUERY_SAMPLE):
            chain(request)
    return len(captured.captured_queries)


def group(
    title: str, names: list[str], rules: int, request: Any, args: argparse.Namespace
) -> list[str]:
    every = chains()
    candidates = {name: (lambda c=every[name]: c(request)) for name in names}
    for name in names[1:]:
        check_headers(every[name], request, rules if "rate" in name else 0)
    queries = {name: count_queries(every[name], request) for name in names[1:]}
    rates = common.interleaved(
        candidates, rounds=args.rounds, seconds=args.seconds, max_ops=args.max_ops
    )
    base = rates[names[0]].us
    lines = [f"\n{title}"]
    for name in names:
        us, cpu = rates[name].us, rates[name].cpu_us
        extra = "" if name == names[0] else f"   overhead {us - base:7.2f} us"
        sql = "" if name == names[0] else f"   queries/{QUERY_SAMPLE} requests: {queries[name]}"
        lines.append(f"  {name:24} {us:8.2f} us/request (CPU {cpu:7.2f}){extra}{sql}")
    print("\n".join(lines))
    return lines


def authentication(request: Any, args: argparse.Namespace) -> None:
    """DRF's API-key authentication of one request (the third feature the HTTP bench turns on)."""
    from rest_framework.request import Request

    from clients.authentication import ApiKeyAuthentication

    drf_request = Request(request)
    auth = ApiKeyAuthentication()
    common.expect(auth.authenticate(drf_request) is not None, "the API key does not authenticate")
    rates = common.interleaved(
        {"ApiKeyAuthentication": lambda: auth.authenticate(drf_request)},
        rounds=args.rounds,
        seconds=args.seconds,
        max_ops=args.max_ops,
    )
    print("\nDRF API-key authentication (cached key lookup, HMAC-SHA256 of the key)")
    rate = rates["ApiKeyAuthentication"]
    print(f"  {'authenticate()':24} {rate.us:8.2f} us/request (CPU {rate.cpu_us:7.2f})")


def run(request: Any, args: argparse.Namespace) -> None:
    from django.test import override_settings

    from ratelimits.store import reset_store

    base, shield = "baseline (view alone)", "shield"
    limiter, both = "rate limiter", "shield + rate limiter"
    use_rules([])
    group("No rule (Redis configured)", [base, shield, limiter], 0, request, args)
    use_rules(GLOBAL)
    group("1 rule, global * (Redis)", [base, limiter, both], 1, request, args)
    use_rules(THREE)
    group("3 rules, ip * + api_key * + global * (Redis)", [base, limiter, both], 3, request, args)
    with override_settings(REDIS_URL=""):
        reset_store()
        use_rules(GLOBAL)
        group("1 rule, global * (local memory)", [base, limiter], 1, request, args)
        use_rules(THREE)
        group("3 rules (local memory)", [base, limiter], 3, request, args)
    reset_store()


def main() -> None:
    args = parse_args()
    env = common.bench_env(args.database_url, args.redis_url)
    common.ensure_database(args.database_url)
    common.setup_django("bench.settings_on", env)
    print("bench/middleware_cost.py")
    for line in common.machine(database_url=args.database_url, redis_url=args.redis_url):
        print("  " + line)
    print(f"  load average: {common.load_average()}")
    print(f"  {args.rounds} interleaved rounds x {args.seconds} s per candidate")
    common.migrate_and_check_normal()
    request = make_request(common.create_api_key("middleware_cost"))
    try:
        run(request, args)
        authentication(request, args)
    finally:
        common.set_rules(GLOBAL, max_requests=RULE_MAX)  # what bench/http_overhead.py uses
        common.delete_bench_keys(args.redis_url)
    print(f"\n  load average at the end: {common.load_average()}")


if __name__ == "__main__":
    main()

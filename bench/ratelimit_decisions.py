"""Rate-limit decisions per second in one process: the project's limiter against its peers.

One thread, one loop per candidate, the candidates interleaved round by round: the figures are
medians over the rounds, and each ratio is the median of the ratios measured within one round
(the ratio of the two medians is printed in brackets). Every candidate does the same work on
two realistic rule sets:

(a) one `ip *` rule of 100 per minute; each decision is for the next of 10,000 distinct client
    addresses (198.18.0.0/18), so every address is a key of its own, as on the internet;
(b) a `global *` rule (1,000,000/min), an `api_key *` rule (100,000/min) and a path rule
    (`/bench`, 100,000/min), all three matching every request of one API client.

Candidates against Redis (REDIS_URL, default redis://127.0.0.1:6379/3):
- baselines, the fastest the project's own client can do (redis-py with hiredis, one pooled
  `Connection`, `send_command` + `read_response`, no client layer): `INCR` of the same keys,
  and a pipelined `INCR` + `EXPIRE` (what any fixed window needs), one per rule;
- project: what RateLimitMiddleware runs for a request once it has its rules and the client
  address: `request_identity()` then `limiter.check()`, one EVALSHA for every matching rule;
- limits 5.8 (what slowapi and Flask-Limiter use): `FixedWindowRateLimiter.hit()` on its
  `RedisStorage`, one call per rule;
- django-ratelimit 4.1: `get_usage(..., increment=True)` on Django's RedisCache, one call per
  rule.
Targets: project >= 1.0x limits and >= 5x django-ratelimit, on (a) and on (b).

Local memory (no REDIS_URL: `LocalStore`, one process) against django-ratelimit on LocMemCache
(target >= 5x) and, for information, limits' `MemoryStorage`.

Every rule is matched and counted; no decision in a run goes over a limit (10,000 addresses
at 100 per minute each need over a million decisions a minute), so every candidate takes its
"allowed" path.

    .venv/bin/python bench/ratelimit_decisions.py                 # 15 rounds of 0.25 s each
    .venv/bin/python bench/ratelimit_decisions.py --rounds 31 --seconds 0.5
    .venv/bin/python bench/ratelimit_decisions.py --skip-redis    # local memory only

Keys live under the `vobench:` prefix (limits' too) and are deleted at the end. The database
is not used.
"""

import argparse
import itertools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common

PATH = "/bench/ping"
ADDRESSES = 10_000
CLIENT_ID = 42
API_KEY = "vo_test_bench_key"
TARGET_LIMITS = 1.0
TARGET_DJANGO = 5.0
# Rule set (b): (scope, key, limit per minute).
RULES_B = (("global", "*", 1_000_000), ("api_key", "*", 100_000), ("path", "/bench", 100_000))
RULE_A = ("ip", "*", 100)
LIMITS_PREFIX = common.CACHE_KEY_PREFIX + ":limits"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (median)")
    parser.add_argument("--seconds", type=float, default=0.25, help="seconds per candidate/round")
    parser.add_argument("--max-ops", type=int, default=1_000_000, help="cap per candidate/round")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", common.DEFAULT_REDIS_URL)
    )
    parser.add_argument("--skip-redis", action="store_true", help="local memory only")
    args = parser.parse_args()
    common.check_rounds(parser, args)
    return args


def address(number: int) -> str:
    return f"198.18.{number // 256}.{number % 256}"


def build() -> SimpleNamespace:
    """The two rule sets, one request per address (a) and the API client's request (b)."""
    from django.test import RequestFactory

    from ratelimits.ruleset import RuleSet

    def rules(specs: list[tuple[str, str, int]], first_id: int) -> Any:
        return RuleSet.build(
            SimpleNamespace(id=first_id + n, scope=s, key=k, window_seconds=60, max_requests=m)
            for n, (s, k, m) in enumerate(specs)
        )

    factory = RequestFactory()
    requests_a = []
    for number in range(ADDRESSES):
        request = factory.get(PATH, REMOTE_ADDR=address(number), HTTP_HOST="127.0.0.1")
        request.client_ip = address(number)  # as RequestContextMiddleware sets it
        requests_a.append(request)
    request_b = factory.get(PATH, REMOTE_ADDR="127.0.0.1", HTTP_X_API_KEY=API_KEY)
    request_b.client_ip = "127.0.0.1"
    return SimpleNamespace(
        rules_a=rules([RULE_A], 900_001),
        rules_b=rules(list(RULES_B), 900_011),
        requests_a=requests_a,
        request_b=request_b,
    )


def cycle(items: list[Any]) -> Callable[[], Any]:
    """A function returning the next item each call, round and round."""
    return itertools.cycle(items).__next__


# --- the project ------------------------------------------------------------------------------


def project_a(setup: SimpleNamespace) -> Callable[[], object]:
    from ratelimits.limiter import check
    from ratelimits.middleware import request_identity

    rules, next_request = setup.rules_a, cycle(setup.requests_a)

    def op() -> object:
        return check(rules, request_identity(next_request(), rules, PATH))

    return op


def project_b(setup: SimpleNamespace) -> Callable[[], object]:
    from ratelimits.limiter import check
    from ratelimits.ruleset import Identity

    rules, request = setup.rules_b, setup.request_b

    def op() -> object:
        # The API client is resolved by the cached lookup DRF's authentication shares; the
        # peers get the raw key, so the lookup is left out of every side.
        identity = Identity(ip=request.client_ip, client_id=CLIENT_ID, path=request.path_info)
        return check(rules, identity)

    return op


# --- the peers --------------------------------------------------------------------------------


def limits_ops(storage: Any) -> tuple[Callable[[], object], Callable[[], object]]:
    """limits' fixed window on `storage`, for (a) and (b)."""
    from limits import RateLimitItemPerMinute
    from limits.strategies import FixedWindowRateLimiter

    limiter = FixedWindowRateLimiter(storage)
    item_a = RateLimitItemPerMinute(RULE_A[2], namespace="A")
    next_address = cycle([address(n) for n in range(ADDRESSES)])
    items_b = [
        RateLimitItemPerMinute(limit, namespace=f"B{n}") for n, (*_, limit) in enumerate(RULES_B)
    ]

    def op_a() -> object:
        return limiter.hit(item_a, "ip", next_address())

    def op_b() -> object:
        return (
            limiter.hit(items_b[0], "global")
            and limiter.hit(items_b[1], "api_key", str(CLIENT_ID))
            and limiter.hit(items_b[2], "path", "/bench")
        )

    return op_a, op_b


def django_ratelimit_ops(
    setup: SimpleNamespace,
) -> tuple[Callable[[], object], Callable[[], object]]:
    """django-ratelimit's get_usage on the cache RATELIMIT_USE_CACHE names, for (a) and (b)."""
    from django_ratelimit.core import get_usage

    next_request = cycle(setup.requests_a)
    request_b = setup.request_b
    rules_b = [
        ("bench.global", lambda group, request: "*", f"{RULES_B[0][2]}/m"),
        ("bench.api_key", "header:x-api-key", f"{RULES_B[1][2]}/m"),
        ("bench.path", lambda group, request: "/bench", f"{RULES_B[2][2]}/m"),
    ]

    def op_a() -> object:
        return get_usage(next_request(), group="bench.ip", key="ip", rate="100/m", increment=True)

    def op_b() -> object:
        usage = None
        for group, key, rate in rules_b:
            usage = get_usage(request_b, group=group, key=key, rate=rate, increment=True)
        return usage

    return op_a, op_b


# --- baselines --------------------------------------------------------------------------------


def baseline_ops(store: Any) -> dict[str, Callable[[], object]]:
    """INCR, and INCR + EXPIRE pipelined, on one Connection: one per rule, same keys as (a)."""
    connection = store.client.connection_pool.make_connection()
    prefix = common.CACHE_KEY_PREFIX + ":base:"
    next_key = cycle([prefix + address(n) for n in range(ADDRESSES)])
    keys_b = [prefix + scope for scope, _key, _limit in RULES_B]

    def incr(keys: list[str]) -> list[object]:
        connection.send_packed_command(connection.pack_commands([("INCR", k) for k in keys]))
        return [connection.read_response() for _ in keys]

    def incr_expire(keys: list[str]) -> list[object]:
        commands = [c for k in keys for c in (("INCR", k), ("EXPIRE", k, 62, "NX"))]
        connection.send_packed_command(connection.pack_commands(commands))
        return [connection.read_response() for _ in commands]

    return {
        "INCR (a)": lambda: incr([next_key()]),
        "INCR+EXPIRE (a)": lambda: incr_expire([next_key()]),
        "INCR x3 (b)": lambda: incr(keys_b),
        "INCR+EXPIRE x3 (b)": lambda: incr_expire(keys_b),
    }


# --- runs -------------------------------------------------------------------------------------


def sanity(candidates: dict[str, Callable[[], object]]) -> None:
    """Every side counts and allows (a project decision matches every rule of its set)."""
    for name, op in candidates.items():
        result = op()
        if name.startswith("project"):
            expected = 1 if "(a)" in name else 3
            common.expect(
                result is not None and result.allowed and len(result.verdicts) == expected,
                f"{name}: {result!r}",
            )
        elif name.startswith("django-ratelimit"):
            common.expect(result is not None and not result["should_limit"], f"{name}: {result}")
        elif name.startswith("limits"):
            common.expect(result is True, f"{name}: {result!r}")


def run_redis(setup: SimpleNamespace, args: argparse.Namespace) -> dict[str, common.Rate]:
    from django.test import override_settings
    from limits.storage import RedisStorage

    from ratelimits.store import RedisStore, get_store

    store = get_store()
    common.expect(isinstance(store, RedisStore), f"not the Redis store: {store!r}")
    storage = RedisStorage(args.redis_url, key_prefix=LIMITS_PREFIX)
    limits_a, limits_b = limits_ops(storage)
    with override_settings(RATELIMIT_USE_CACHE="default"):
        django_a, django_b = django_ratelimit_ops(setup)
        candidates = {
            **baseline_ops(store),
            "project (a)": project_a(setup),
            "limits (a)": limits_a,
            "django-ratelimit (a)": django_a,
            "project (b)": project_b(setup),
            "limits (b)": limits_b,
            "django-ratelimit (b)": django_b,
        }
        sanity(candidates)
        return common.interleaved(
            candidates, rounds=args.rounds, seconds=args.seconds, max_ops=args.max_ops
        )


def run_local(setup: SimpleNamespace, args: argparse.Namespace) -> dict[str, common.Rate]:
    from django.test import override_settings
    from limits.storage import MemoryStorage

    from ratelimits.store import LocalStore, get_store

    limits_a, limits_b = limits_ops(MemoryStorage())
    with override_settings(REDIS_URL="", RATELIMIT_USE_CACHE="bench_locmem"):
        common.expect(isinstance(get_store(), LocalStore), "not the local-memory store")
        django_a, django_b = django_ratelimit_ops(setup)
        candidates = {
            "project (a)": project_a(setup),
            "limits memory (a)": limits_a,
            "django-ratelimit (a)": django_a,
            "project (b)": project_b(setup),
            "limits memory (b)": limits_b,
            "django-ratelimit (b)": django_b,
        }
        sanity(candidates)
        return common.interleaved(
            candidates, rounds=args.rounds, seconds=args.seconds, max_ops=args.max_ops
        )


# --- report -----------------------------------------------------------------------------------


def show(title: str, rates: dict[str, common.Rate]) -> None:
    print(f"\n{title}")
    print(f"  {'':32} {'ops/s':>9}   {'us/decision':>11}   {'CPU us/decision':>15}")
    for name, rate in rates.items():
        print(f"  {name:32} {rate.ops:9.0f}   {rate.us:11.2f}   {rate.cpu_us:15.2f}")


def show_ratio(
    rates: dict[str, common.Rate], numerator: str, denominator: str, target: float | None = None
) -> None:
    value = common.paired_ratio(rates[numerator], rates[denominator])
    of_medians = common.ratio(rates[numerator].ops, rates[denominator].ops)
    suffix = f"   target >= {target}: {common.verdict(value, target)}" if target else ""
    label = f"{numerator} / {denominator}"
    print(f"  {label:48} {value:6.2f}x ({of_medians:5.2f}x){suffix}")


def report_redis(rates: dict[str, common.Rate]) -> None:
    show("Redis (redis-py with hiredis; django-ratelimit on Django's RedisCache)", rates)
    print("  ratios: median of the per-round ratios (ratio of the medians in brackets)")
    for rule_set in ("a", "b"):
        project = f"project ({rule_set})"
        show_ratio(rates, project, f"limits ({rule_set})", TARGET_LIMITS)
        show_ratio(rates, project, f"django-ratelimit ({rule_set})", TARGET_DJANGO)
    show_ratio(rates, "project (a)", "INCR (a)")
    show_ratio(rates, "project (a)", "INCR+EXPIRE (a)")
    show_ratio(rates, "project (b)", "INCR x3 (b)")
    show_ratio(rates, "project (b)", "INCR+EXPIRE x3 (b)")


def report_local(rates: dict[str, common.Rate]) -> None:
    show("Local memory (one process; django-ratelimit on LocMemCache)", rates)
    print("  ratios: median of the per-round ratios (ratio of the medians in brackets)")
    for rule_set in ("a", "b"):
        project = f"project ({rule_set})"
        show_ratio(rates, project, f"django-ratelimit ({rule_set})", TARGET_DJANGO)
        show_ratio(rates, project, f"limits memory ({rule_set})")


def main() -> None:
    args = parse_args()
    redis_url = "" if args.skip_redis else common.require_loopback(args.redis_url)
    env = common.bench_env(common.DEFAULT_DATABASE_URL, redis_url)
    common.setup_django("bench.settings_decisions", env)
    print("bench/ratelimit_decisions.py")
    for line in common.machine(redis_url=redis_url):
        print("  " + line)
    print(f"  load average: {common.load_average()}")
    print(
        f"  {args.rounds} interleaved rounds x {args.seconds} s (at most {args.max_ops} ops) per "
        f"candidate; (a) ip * 100/min over {ADDRESSES} addresses; (b) "
        + ", ".join(f"{s} {k} {m}/min" for s, k, m in RULES_B)
    )
    setup = build()
    try:
        if redis_url:
            report_redis(run_redis(setup, args))
        report_local(run_local(setup, args))
    finally:
        if redis_url:
            common.delete_bench_keys(redis_url)
    print(f"\n  load average at the end: {common.load_average()}")


if __name__ == "__main__":
    main()

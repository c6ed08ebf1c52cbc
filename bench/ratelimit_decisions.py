"""Rate-limit decisions per second in one process: the project's limiter against its baselines.

One thread, one loop per candidate, the candidates interleaved round by round: the figures are
medians over the rounds, and each ratio is the median of the ratios measured within one round
(the ratio of the two medians is printed in brackets). Every candidate decides the same thing: one request from 127.0.0.1 to /bench/ping,
counted against rules of the same rate (default 1000000000 per 60 s, never exceeded).

Redis (REDIS_URL, default redis://127.0.0.1:6379/3):
- `INCR`: a bare `INCR` of one key from the project store's own redis-py client (the same
  connection pool, hiredis): one round trip and nothing else, the floor.
- store.incr_many: the project store's call alone (EVALSHA of the Lua script, one key), to
  split the project's cost between Redis and Python.
- project: what RateLimitMiddleware runs for a request once it has the rule set:
  `request_identity()` then `limiter.check()` (match every rule, one EVALSHA for all of them).
- django-ratelimit 4.1: `get_usage(request, key=..., rate=..., increment=True)` on Django's
  built-in RedisCache (the project's "default" cache), once per rule.
Targets: project/INCR >= 0.8 and project/django-ratelimit >= 5 with one rule (`ip *`).

Local memory (no REDIS_URL: `LocalStore`, per process) against django-ratelimit on
LocMemCache. Target: project/django-ratelimit >= 2.

Diagnostics (not targets): `INCR` and the store's `EVALSHA` sent on one pooled redis-py
Connection (`send_command` + `read_response`), i.e. the round trip without the `Redis` client
layer, to show how much of a decision is redis-py's own bookkeeping.

Every row prints ops/s (wall clock, one thread), us per decision and this process's CPU us per
decision (the part a busy web worker pays; the rest is waiting for Redis).

Both are also run with three matching rules (`ip *`, `path /bench`, `global *`): the project
still makes one store call, django-ratelimit one call per rule.

    .venv/bin/python bench/ratelimit_decisions.py                 # 15 rounds of 0.25 s each
    .venv/bin/python bench/ratelimit_decisions.py --rounds 31 --seconds 0.5 --max-ops 500000
    .venv/bin/python bench/ratelimit_decisions.py --skip-redis    # local memory only

Counters live under the `vobench:` prefix and are deleted at the end. The database is not used.
"""

import argparse
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
IP = "127.0.0.1"
TARGET_INCR = 0.8
TARGET_REDIS = 5.0
TARGET_LOCAL = 2.0
# (scope, key) of the rules; the first is the one-rule case.
RULES = (("ip", "*"), ("path", "/bench"), ("global", "*"))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (median)")
    parser.add_argument("--seconds", type=float, default=0.25, help="seconds per candidate/round")
    parser.add_argument("--max-ops", type=int, default=1_000_000, help="cap per candidate/round")
    parser.add_argument("--max-requests", type=int, default=1_000_000_000, help="rule limit")
    parser.add_argument("--window", type=int, default=60, help="rule window, seconds")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", common.DEFAULT_REDIS_URL)
    )
    parser.add_argument("--skip-redis", action="store_true", help="local memory only")
    parser.add_argument(
        "--no-leases",
        action="store_true",
        help="every decision takes its number from Redis (as for limits under 128)",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the project's path")
    args = parser.parse_args()
    common.check_rounds(parser, args)
    return args


def build(args: argparse.Namespace) -> SimpleNamespace:
    """The rule sets, the request and the django-ratelimit arguments of every rule."""
    from django.test import RequestFactory

    from ratelimits.ruleset import RuleSet

    sources = [
        SimpleNamespace(
            id=900_001 + number,
            scope=scope,
            key=key,
            window_seconds=args.window,
            max_requests=args.max_requests,
        )
        for number, (scope, key) in enumerate(RULES)
    ]
    request = RequestFactory().get(PATH, REMOTE_ADDR=IP, HTTP_HOST="127.0.0.1")
    request.client_ip = IP  # as RequestContextMiddleware sets it
    rate = f"{args.max_requests}/{args.window}s"
    django_rules = [
        ("bench.ip", "ip"),
        ("bench.path", lambda group, req: req.path),
        ("bench.global", lambda group, req: "*"),
    ]
    return SimpleNamespace(
        one=RuleSet.build(sources[:1]),
        three=RuleSet.build(sources),
        request=request,
        rate=rate,
        django_rules=django_rules,
    )


def project_op(rules: Any, request: Any) -> Callable[[], object]:
    from ratelimits.limiter import check
    from ratelimits.middleware import request_identity

    def op() -> object:
        return check(rules, request_identity(request, rules, PATH))

    return op


def store_op(store: Any, setup: SimpleNamespace, args: argparse.Namespace) -> Callable[[], object]:
    """The store call alone (the Lua script, or the local dict): the decision minus Python."""
    keys = [setup.one.rules[0].counter_prefix + "bench-store:0"]
    ttls = [args.window + 2]

    def op() -> object:
        return store.incr_many(keys, ttls)

    return op


def django_ratelimit_op(setup: SimpleNamespace, count: int) -> Callable[[], object]:
    from django_ratelimit.core import get_usage

    request, rate = setup.request, setup.rate
    rules = setup.django_rules[:count]

    def op() -> object:
        usage = None
        for group, key in rules:
            usage = get_usage(request, group=group, key=key, rate=rate, increment=True)
        return usage

    return op


def sanity(project: Callable[[], object], django: Callable[[], object], matches: int) -> None:
    """Both sides count and allow, on every matching rule."""
    decision = project()
    common.expect(
        decision is not None
        and decision.allowed
        and len(decision.verdicts) == matches
        and decision.strictest.count >= 1,
        f"project: {decision!r}",
    )
    usage = django()
    common.expect(
        usage is not None and not usage["should_limit"] and usage["count"] >= 1,
        f"django-ratelimit: {usage!r}",
    )


def run_redis(setup: SimpleNamespace, args: argparse.Namespace) -> dict[str, common.Rate]:
    from django.test import override_settings

    from ratelimits.store import RedisStore, get_store

    store = get_store()
    common.expect(isinstance(store, RedisStore), f"not the Redis store: {store!r}")
    incr_key = common.CACHE_KEY_PREFIX + ":bench:incr"
    pool = store.client.connection_pool
    connection = pool.get_connection()
    try:
        with override_settings(RATELIMIT_USE_CACHE="default"):
            candidates = {
                "INCR": lambda: store.client.incr(incr_key),
                "store.incr_many, 1 key": store_op(store, setup, args),
                "project, 1 rule": project_op(setup.one, setup.request),
                "django-ratelimit, 1 rule": django_ratelimit_op(setup, 1),
                "project, 3 rules": project_op(setup.three, setup.request),
                "django-ratelimit, 3 rules": django_ratelimit_op(setup, 3),
                **connection_ops(store, connection, incr_key, args),
            }
            sanity(candidates["project, 1 rule"], candidates["django-ratelimit, 1 rule"], 1)
            sanity(candidates["project, 3 rules"], candidates["django-ratelimit, 3 rules"], 3)
            return common.interleaved(
                candidates, rounds=args.rounds, seconds=args.seconds, max_ops=args.max_ops
            )
    finally:
        pool.release(connection)


def connection_ops(
    store: Any, connection: Any, incr_key: str, args: argparse.Namespace
) -> dict[str, Callable[[], object]]:
    """Diagnostics: the same commands on one pooled Connection, without redis-py's client layer.

    `Redis.execute_command` borrows a connection from the pool (with a can-read check), runs
    retry, event and observability hooks, and gives it back; `Connection.send_command` +
    `read_response` is the bare round trip through hiredis.
    """
    script = getattr(store, "script_one", None) or store.script  # the one-key script if any
    sha = store.client.script_load(script.script)
    keys = [common.CACHE_KEY_PREFIX + ":bench:conn-evalsha"]

    def incr() -> object:
        connection.send_command("INCR", incr_key)
        return connection.read_response()

    def evalsha() -> object:
        connection.send_command("EVALSHA", sha, 1, *keys, args.window + 2, 1)  # ttl, amount
        return connection.read_response()

    return {"diag: INCR, Connection level": incr, "diag: EVALSHA, Connection level": evalsha}


def run_local(setup: SimpleNamespace, args: argparse.Namespace) -> dict[str, common.Rate]:
    from django.test import override_settings

    from ratelimits.store import LocalStore, get_store

    with override_settings(REDIS_URL="", RATELIMIT_USE_CACHE="bench_locmem"):
        common.expect(isinstance(get_store(), LocalStore), "not the local-memory store")
        candidates = {
            "store.incr_many, 1 key": store_op(get_store(), setup, args),
            "project, 1 rule": project_op(setup.one, setup.request),
            "django-ratelimit, 1 rule": django_ratelimit_op(setup, 1),
            "project, 3 rules": project_op(setup.three, setup.request),
            "django-ratelimit, 3 rules": django_ratelimit_op(setup, 3),
        }
        sanity(candidates["project, 1 rule"], candidates["django-ratelimit, 1 rule"], 1)
        sanity(candidates["project, 3 rules"], candidates["django-ratelimit, 3 rules"], 3)
        return common.interleaved(
            candidates, rounds=args.rounds, seconds=args.seconds, max_ops=args.max_ops
        )


def show(title: str, rates: dict[str, common.Rate]) -> None:
    print(f"\n{title}")
    print(f"  {'':32} {'ops/s':>9}   {'us/decision':>11}   {'CPU us/decision':>15}")
    for name, rate in rates.items():
        print(f"  {name:32} {rate.ops:9.0f}   {rate.us:11.2f}   {rate.cpu_us:15.2f}")


def show_ratio(
    label: str,
    rates: dict[str, common.Rate],
    numerator: str,
    denominator: str,
    target: float | None = None,
) -> None:
    value = common.paired_ratio(rates[numerator], rates[denominator])
    of_medians = common.ratio(rates[numerator].ops, rates[denominator].ops)
    suffix = f"   target >= {target}: {common.verdict(value, target)}" if target else ""
    print(f"  {label:40} {value:6.2f}x ({of_medians:5.2f}x){suffix}")


def report_redis(rates: dict[str, common.Rate]) -> None:
    show(
        "Redis (one pooled redis-py client, hiredis; Django RedisCache for django-ratelimit)", rates
    )
    print("  ratios: median of the per-round ratios (ratio of the medians in brackets)")
    show_ratio("project / INCR (1 rule)", rates, "project, 1 rule", "INCR", TARGET_INCR)
    show_ratio(
        "project / django-ratelimit (1 rule)",
        rates,
        "project, 1 rule",
        "django-ratelimit, 1 rule",
        TARGET_REDIS,
    )
    show_ratio(
        "project / django-ratelimit (3 rules)",
        rates,
        "project, 3 rules",
        "django-ratelimit, 3 rules",
        None,
    )
    show_ratio("project 3 rules / project 1 rule", rates, "project, 3 rules", "project, 1 rule")
    show_ratio("diag: Connection-level INCR / INCR", rates, "diag: INCR, Connection level", "INCR")


def report_local(rates: dict[str, common.Rate]) -> None:
    show("Local memory (per process; django-ratelimit on LocMemCache)", rates)
    print("  ratios: median of the per-round ratios (ratio of the medians in brackets)")
    show_ratio(
        "project / django-ratelimit (1 rule)",
        rates,
        "project, 1 rule",
        "django-ratelimit, 1 rule",
        TARGET_LOCAL,
    )
    show_ratio(
        "project / django-ratelimit (3 rules)",
        rates,
        "project, 3 rules",
        "django-ratelimit, 3 rules",
        None,
    )


def profile(setup: SimpleNamespace, args: argparse.Namespace) -> None:
    """cProfile of the project's one-rule path (Redis unless --skip-redis)."""
    import cProfile
    import pstats
    import time

    op = project_op(setup.one, setup.request)
    profiler = cProfile.Profile(time.process_time)  # CPU time: what a busy worker pays
    profiler.enable()
    common.run_for(op, 2.0, 50_000)
    profiler.disable()
    print("\ncProfile (CPU time) of the project's path, 1 rule:")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


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
        f"candidate; rules {args.max_requests}/{args.window}s"
    )
    if args.no_leases:
        from ratelimits import store

        store.LEASE_MAX = 1  # blocks of one: a round trip per decision
    print(f"  leases: {'off (a round trip per decision)' if args.no_leases else 'on'}")
    setup = build(args)
    try:
        if redis_url:
            report_redis(run_redis(setup, args))
        report_local(run_local(setup, args))
        if args.profile:
            profile(setup, args)
    finally:
        if redis_url:
            common.delete_bench_keys(redis_url)
    print(f"\n  load average at the end: {common.load_average()}")


if __name__ == "__main__":
    main()

"""What judging each write by the authoritative maintenance state costs, and what reads cost.

The shield judges a write (POST/PUT/PATCH/DELETE) by the authoritative state: one Redis round
trip with REDIS_URL, else a primary-key read of the singleton row. Before, it judged writes by
this process's cached copy (up to 0.5 s old). Measured in one run, in interleaved rounds:

1. the shield alone, in process (RequestFactory, a trivial view): a POST judged by the cached
   copy (the shield as it was, rebuilt here), judged fresh through Redis, judged fresh through
   PostgreSQL without Redis; a GET; the trivial view alone as the baseline;
2. a whole write request in process (Django's test client, every middleware, DRF, the API-key
   authentication, the service's UPDATE and audit row): `PATCH /system/clients/{id}` with the
   fresh check (Redis) against the same request with the cached check: the ratio is the cost;
3. reads: database queries and Redis commands of 1000 GETs through the shield (both must be 0).

    .venv/bin/python bench/maintenance_write_cost.py \\
        --database-url postgres://postgres@127.0.0.1:5432/valhalla_ops_bench \\
        --redis-url redis://127.0.0.1:6379/3
"""

import argparse
import itertools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common

READS = 1000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (median)")
    parser.add_argument("--seconds", type=float, default=0.3, help="seconds per candidate/round")
    parser.add_argument("--max-ops", type=int, default=200_000, help="cap per candidate/round")
    parser.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL", common.DEFAULT_DATABASE_URL)
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", common.DEFAULT_REDIS_URL)
    )
    args = parser.parse_args()
    common.check_rounds(parser, args)
    if not args.redis_url:
        parser.error("--redis-url is needed: the benchmark compares Redis and the database")
    return args


def cached_shield(get_response: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """The shield as it was: every method judged by this process's cached copy of the state."""
    from maintenance.middleware import ReadOnlyShieldMiddleware, read_state, shield_response

    class CachedShield(ReadOnlyShieldMiddleware):
        def __call__(self, request: Any) -> Any:
            state = read_state()
            if state is not None and state.is_normal:
                return self.get_response(request)
            return shield_response(request, state)

    return CachedShield(get_response)


class RedisCommands:
    """Counts the commands this process sends to Redis (every round trip sends at least one)."""

    def __init__(self) -> None:
        import redis.connection

        self.count = 0
        self.cls = redis.connection.AbstractConnection
        self.original = self.cls.send_packed_command
        counter = self

        def counting(conn: Any, command: Any, check_health: bool = True) -> None:
            counter.count += 1
            return counter.original(conn, command, check_health)

        self.cls.send_packed_command = counting  # type: ignore[method-assign]

    def close(self) -> None:
        self.cls.send_packed_command = self.original  # type: ignore[method-assign]


def shield_alone(args: argparse.Namespace) -> None:
    """Two groups, each with its own baseline: Redis configured, then no Redis (PostgreSQL)."""
    from django.test import override_settings

    local = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    print("\nThe shield alone, in process (us per request; overhead over the view alone)")
    shield_group("with Redis: one EVALSHA to judge and count, one to uncount", args, redis_ping)
    with override_settings(CACHES=local):
        shield_group("without Redis: a primary-key read (and a flock)", args, select_one)


def redis_ping() -> object:
    from maintenance import shared

    target = shared._target()
    assert target is not None
    return target.client.ping()


def select_one() -> object:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone()


def shield_group(title: str, args: argparse.Namespace, reference: Callable[[], object]) -> None:
    from django.test import RequestFactory

    from maintenance.middleware import ReadOnlyShieldMiddleware
    from maintenance.state import clear_local

    clear_local()
    factory = RequestFactory()
    post = factory.post("/bench/ping", REMOTE_ADDR="127.0.0.1", HTTP_HOST="127.0.0.1")
    get = factory.get("/bench/ping", REMOTE_ADDR="127.0.0.1", HTTP_HOST="127.0.0.1")
    fresh = ReadOnlyShieldMiddleware(common.trivial_view)
    cached = cached_shield(common.trivial_view)
    candidates = {
        "baseline (view alone)": lambda: common.trivial_view(post),
        "POST, cached copy (before)": lambda: cached(post),
        "POST, authoritative (now)": lambda: fresh(post),
        "GET (cached copy, as before)": lambda: fresh(get),
        f"reference: {reference.__name__}()": reference,
    }
    rates = common.interleaved(
        candidates, rounds=args.rounds, seconds=args.seconds, max_ops=args.max_ops
    )
    base = rates["baseline (view alone)"].us
    print(f"  {title}")
    for name, rate in rates.items():
        print(f"    {name:30} {rate.us:8.2f} us   overhead {rate.us - base:7.2f} us")


def operator_caller() -> tuple[Any, int]:
    from django.contrib.auth.models import Group

    from clients import services
    from valhalla_ops.principals import command_actor

    actor = command_actor("bench")
    stamp = os.getpid()
    target, _key = services.create_client(
        actor=actor, name=f"bench-target-{stamp}", client_type="service"
    )
    _client, key = services.create_client(
        actor=actor,
        name=f"bench-operator-{stamp}",
        client_type="service",
        groups=[Group.objects.get(name="ops-operator")],
    )
    return key, target.pk


def client_with(middleware_shield: str, key: str) -> Any:
    """A test client whose handler loaded its middleware with `middleware_shield` as the shield."""
    from django.conf import settings
    from django.test import Client, override_settings

    chain = [
        middleware_shield if name.endswith("ReadOnlyShieldMiddleware") else name
        for name in settings.MIDDLEWARE
    ]
    client = Client(HTTP_HOST="127.0.0.1", HTTP_X_API_KEY=key)
    with override_settings(MIDDLEWARE=chain):
        client.get("/healthz")  # the handler builds its middleware chain now, and keeps it
    return client


def whole_write(args: argparse.Namespace) -> None:
    key, target = operator_caller()
    fresh = client_with("maintenance.middleware.ReadOnlyShieldMiddleware", key)
    cached = client_with("bench.maintenance_write_cost.CachedShieldMiddleware", key)
    counter = itertools.count()

    def patch(client: Any) -> Callable[[], object]:
        def send() -> object:
            body = f'{{"description": "bench {next(counter)}"}}'
            response = client.patch(
                f"/system/clients/{target}", body, content_type="application/json"
            )
            common.expect(response.status_code == 200, f"PATCH answered {response.status_code}")
            return response

        return send

    rates = common.interleaved(
        {"cached copy (before)": patch(cached), "fresh via Redis": patch(fresh)},
        rounds=args.rounds,
        seconds=args.seconds,
        max_ops=args.max_ops,
    )
    before, after = rates["cached copy (before)"], rates["fresh via Redis"]
    ratio = common.paired_ratio(before, after)  # requests/s before over after: cost factor
    print("\nA whole write request in process: PATCH /system/clients/{id} (UPDATE + audit row)")
    print(f"  {'cached copy (before)':30} {before.us:8.2f} us/request")
    print(f"  {'fresh via Redis':30} {after.us:8.2f} us/request")
    print(f"  cost ratio fresh/cached: {ratio:.3f} (paired median over rounds)")


def reads() -> None:
    from django.db import connection
    from django.test import RequestFactory
    from django.test.utils import CaptureQueriesContext

    from maintenance.middleware import ReadOnlyShieldMiddleware

    shield = ReadOnlyShieldMiddleware(common.trivial_view)
    get = RequestFactory().get("/bench/ping", REMOTE_ADDR="127.0.0.1", HTTP_HOST="127.0.0.1")
    shield(get)  # warm: the per-process copy is loaded once
    commands = RedisCommands()
    try:
        with CaptureQueriesContext(connection) as captured:
            for _ in range(READS):
                shield(get)
    finally:
        commands.close()
    print(f"\nReads through the shield: {READS} GETs (warm, within the copy's 0.5 s)")
    print(f"  database queries: {len(captured.captured_queries)}")
    print(f"  Redis commands:   {commands.count}")
    common.expect(not captured.captured_queries and not commands.count, "a read cost a round trip")


def main() -> None:
    args = parse_args()
    env = common.bench_env(args.database_url, args.redis_url)
    env["MAINTENANCE_STATE_CACHE_SECONDS"] = "3600"  # reads: the copy must not lapse mid-count
    common.ensure_database(args.database_url)
    common.setup_django("bench.settings_on", env)
    print("bench/maintenance_write_cost.py")
    for line in common.machine(database_url=args.database_url, redis_url=args.redis_url):
        print("  " + line)
    print(f"  load average: {common.load_average()}")
    print(f"  {args.rounds} interleaved rounds x {args.seconds} s per candidate")
    common.migrate_and_check_normal()
    try:
        reads()
        shield_alone(args)
        whole_write(args)
    finally:
        common.delete_bench_keys(args.redis_url)
    print(f"\n  load average at the end: {common.load_average()}")


def __getattr__(name: str) -> Any:
    """`CachedShieldMiddleware`, importable by path for Django's MIDDLEWARE setting."""
    if name == "CachedShieldMiddleware":
        return cached_shield
    raise AttributeError(name)


if __name__ == "__main__":
    main()

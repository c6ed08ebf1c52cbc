"""Shared helpers of the benchmark scripts: environment, Django set-up, timing, machine facts.

Every address is loopback: `require_loopback` refuses a DATABASE_URL or REDIS_URL elsewhere.
Every loop is bounded by a duration and an operation count and stops by itself.
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/valhalla_ops_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/3"
CACHE_KEY_PREFIX = "vobench"  # every Redis key the benchmarks make starts with it
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
CHECK_EVERY = 256  # operations between two clock reads in a timed loop

# Production-like settings: DEBUG off (no query log), HTTP on loopback, bench-only secrets.
BENCH_ENV = {
    "DEBUG": "0",
    "SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789abcdefghijklmnop",
    "API_KEY_PEPPER": "bench-only-api-key-pepper",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "SECURE_SSL_REDIRECT": "0",
    "LOG_LEVEL": "WARNING",
    "CACHE_KEY_PREFIX": CACHE_KEY_PREFIX,
}


def require_loopback(url: str) -> str:
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK:
        raise SystemExit(f"refusing {url!r}: the benchmarks only use loopback addresses")
    return url


def bench_env(database_url: str, redis_url: str) -> dict[str, str]:
    """The environment of every Django process of a benchmark run."""
    env = {**os.environ, **BENCH_ENV}
    env["DATABASE_URL"] = require_loopback(database_url)
    env["REDIS_URL"] = require_loopback(redis_url) if redis_url else ""
    return env


def setup_django(settings_module: str, env: dict[str, str]) -> None:
    """Configure this process as a Django process with `env` and `settings_module`."""
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def ensure_database(database_url: str) -> None:
    """Create the benchmark's PostgreSQL database if it does not exist yet."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(require_loopback(database_url))
    name = parts.path.lstrip("/")
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def run_for(op: Callable[[], object], seconds: float, max_ops: int) -> tuple[int, float, float]:
    """Call `op` until `seconds` have passed or `max_ops` calls were made.

    Returns (calls, elapsed wall seconds, CPU seconds this process used).
    """
    clock = time.perf_counter
    done = 0
    cpu_start = time.process_time()
    start = clock()
    deadline = start + seconds
    while done < max_ops:
        batch = min(CHECK_EVERY, max_ops - done)
        for _ in range(batch):
            op()
        done += batch
        if clock() >= deadline:
            break
    return done, clock() - start, time.process_time() - cpu_start


@dataclass
class Rate:
    """Median operations per second (wall clock) and median CPU microseconds per operation."""

    ops: float
    cpu_us: float
    rounds: list[float]  # operations per second in each round

    @property
    def us(self) -> float:
        return 1e6 / self.ops


def paired_ratio(numerator: Rate, denominator: Rate) -> float:
    """Median over the rounds of numerator/denominator measured in the same round.

    Candidates of one round run seconds apart, so a drift of the machine (another process, the
    host) cancels out of each round's ratio better than out of the ratio of the two medians.
    """
    pairs = zip(numerator.rounds, denominator.rounds, strict=True)
    return statistics.median(ratio(a, b) for a, b in pairs)


def interleaved(
    candidates: dict[str, Callable[[], object]], *, rounds: int, seconds: float, max_ops: int
) -> dict[str, Rate]:
    """Each candidate's median rate over `rounds` interleaved rounds.

    Each round runs every candidate once, one after the other, so a slow moment of the machine
    hits all of them rather than one.
    """
    for op in candidates.values():  # warm up: connections, caches, first windows
        run_for(op, min(0.3, seconds), max_ops)
    rates: dict[str, list[float]] = {name: [] for name in candidates}
    cpus: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, op in candidates.items():
            done, elapsed, cpu = run_for(op, seconds, max_ops)
            rates[name].append(done / elapsed)
            cpus[name].append(cpu * 1e6 / done)
    return {
        name: Rate(statistics.median(rates[name]), statistics.median(cpus[name]), rates[name])
        for name in candidates
    }


def redis_version(redis_url: str) -> str:
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    try:
        return str(client.info("server")["redis_version"])
    finally:
        client.close()


def postgres_version(database_url: str) -> str:
    import psycopg

    with psycopg.connect(database_url, connect_timeout=5) as conn:
        return str(conn.execute("SHOW server_version").fetchone()[0])


def machine(*, database_url: str = "", redis_url: str = "") -> list[str]:
    """Lines describing the machine and the servers, for the report."""
    lines = [
        f"nproc: {os.cpu_count()}  cpu: {cpu_model() or platform.machine()}",
        f"python: {platform.python_version()} ({sys.executable})",
        f"platform: {platform.platform()}",
    ]
    if redis_url:
        lines.append(f"redis: {redis_version(redis_url)} at {redis_url}")
    if database_url:
        lines.append(f"postgresql: {postgres_version(database_url)} at {database_url}")
    return lines


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return ""


def delete_bench_keys(redis_url: str) -> int:
    """Remove every key the benchmarks made (they all start with CACHE_KEY_PREFIX)."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=CACHE_KEY_PREFIX + ":*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        return len(keys)
    finally:
        client.close()


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")


def verdict(value: float, target: float) -> str:
    return "met" if value >= target else "NOT met"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine skews every figure."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


# --- the benchmark database (Django must be set up) -----------------------------------------


def migrate_and_check_normal() -> None:
    """Migrate the benchmark database; refuse to measure unless the mode is normal."""
    from django.core.management import call_command

    from maintenance.state import load_from_database

    call_command("migrate", verbosity=0, interactive=False)
    mode = load_from_database().mode
    if mode != "normal":
        raise SystemExit(f"the bench database is in {mode!r} mode; set it back to normal first")


def set_rules(specs: list[tuple[str, str]], *, max_requests: int, window: int = 60) -> None:
    """Make the enabled rules exactly `specs` ((scope, key) pairs), through the services."""
    from ratelimits import services
    from ratelimits.models import RateLimitRule
    from valhalla_ops.principals import command_actor

    actor = command_actor("bench")
    wanted = set(specs)
    kept: set[tuple[str, str]] = set()
    for rule in RateLimitRule.objects.all():
        spec = (rule.scope, rule.key)
        if spec not in wanted or spec in kept or rule.window_seconds != window:
            services.delete_rule(actor=actor, rule=rule)
            continue
        kept.add(spec)
        if rule.max_requests != max_requests or not rule.enabled:
            services.update_rule(actor=actor, rule=rule, max_requests=max_requests, enabled=True)
    for scope, key in specs:
        if (scope, key) not in kept:
            services.create_rule(
                actor=actor, scope=scope, key=key, max_requests=max_requests, window_seconds=window
            )


def create_api_key(purpose: str) -> str:
    """A new API client in ops-viewer, made by `manage.py create_api_client`; its key."""
    import io

    from django.core.management import call_command

    out = io.StringIO()
    call_command(
        "create_api_client",
        name=f"bench-{purpose}-{int(time.time() * 1000)}",
        client_type="service",
        groups=["ops-viewer"],
        description=f"bench/{purpose}.py",
        stdout=out,
    )
    return out.getvalue().strip().splitlines()[-1]


def expect(condition: bool, message: str) -> None:
    """Stop the benchmark when what it measures is not what it claims to measure."""
    if not condition:
        raise SystemExit(f"check failed: {message}")


# --- CPU accounting (Linux /proc) ------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()  # fields from the 3rd (state) on


def child_pids(parent: int) -> list[int]:
    """The live children of `parent` (gunicorn's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int(_stat_fields(int(entry.name))[1]) == parent:
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def redis_cpu_seconds(redis_url: str) -> float:
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    try:
        info = client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    finally:
        client.close()


def check_rounds(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse --rounds and --seconds outside what a benchmark run can sensibly take."""
    if not 1 <= args.rounds <= 50 or not 0 < args.seconds <= 30:
        parser.error("--rounds must be 1..50 and --seconds in (0, 30]")


def trivial_view(request: Any) -> Any:
    """The cheapest Django view: what middleware costs are measured against."""
    from django.http import HttpResponse

    return HttpResponse(b'{"ok": true}', content_type="application/json")

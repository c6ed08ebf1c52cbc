"""500 concurrent requests against a limit of 100, over two gunicorn instances sharing Redis."""

import os
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ratelimits import services
from ratelimits.limiter import window_of
from ratelimits.models import RateLimitSnapshot
from ratelimits.ruleset import counter_prefix
from valhalla_ops.principals import SYSTEM
from valhalla_ops.tests.services import free_ports, postgres_url

BASE_DIR = Path(__file__).resolve().parents[2]
REQUESTS = 500
LIMIT = 100
WINDOW = 86400


def start_gunicorn(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "gunicorn", "valhalla_ops.wsgi", "--config", "gunicorn.conf.py",
        "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "8",
    ]  # fmt: skip
    return subprocess.Popen(
        command, cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def wait_until_up(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            assert process.stderr is not None  # start_gunicorn pipes it
            raise RuntimeError(f"gunicorn exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"gunicorn on port {port} did not start")


@pytest.fixture
def two_gunicorns(postgres, redis_client, redis_url):
    env = {
        **os.environ,
        "DATABASE_URL": postgres_url(),
        "REDIS_URL": redis_url,
        "RATELIMIT_ENABLED": "1",
        "RATELIMIT_REDIS_TIMEOUT": "2",  # a slow reply on a busy machine must not fail open
        "GUNICORN_ACCESSLOG": "/dev/null",
    }
    ports = free_ports(2)
    processes = [start_gunicorn(port, env) for port in ports]
    try:
        for port, process in zip(ports, processes, strict=True):
            wait_until_up(port, process)
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def fire(ports: list[int]) -> Counter:
    clients = {
        port: httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) for port in ports
    }

    def one(n: int) -> int | str:
        try:
            return clients[ports[n % 2]].get("/system/ratelimits/snapshots").status_code
        except httpx.HTTPError as error:
            return type(error).__name__

    with ThreadPoolExecutor(max_workers=100) as pool:
        results = Counter(pool.map(one, range(REQUESTS)))
    for client in clients.values():
        client.close()
    return results


@pytest.mark.real_clock
@pytest.mark.django_db(transaction=True)
def test_500_concurrent_requests_over_two_gunicorns_let_at_most_100_through(
    two_gunicorns, use_redis
):
    rule = services.create_rule(
        actor=SYSTEM, scope="global", key="*", max_requests=LIMIT, window_seconds=WINDOW
    )
    _index, start = window_of(counter_prefix(rule.pk, WINDOW) + "*", WINDOW, time.time())
    if start + WINDOW - time.time() < 60:  # do not straddle a window boundary
        time.sleep(start + WINDOW - time.time() + 1)
    time.sleep(1.5)  # both instances pick up the new rule (RATELIMIT_RULES_CACHE_SECONDS)

    results = fire(two_gunicorns)

    allowed = results[401]  # anonymous: passed the limiter, then refused by DRF
    assert allowed <= LIMIT, results
    assert results[429] + allowed == REQUESTS, results  # nothing failed, so exactly 100
    assert allowed == LIMIT
    assert not RateLimitSnapshot.objects.exists()  # the refusals wrote nothing
    services.report_exceeded()  # the worker's step
    report = RateLimitSnapshot.objects.get(rule=rule)
    assert (report.keys_over, report.current_count) == (1, REQUESTS)

"""A mode switch is seen by every serving process before it returns, over real gunicorn.

Two deployments, each served by `gunicorn --config gunicorn.conf.py` exactly as `make run`
serves: PostgreSQL + Redis (two worker processes), and the embedded default, SQLite without
Redis (one process with threads). In each, 10 rounds of: switch the mode over the API, then
25 writes at once, each over a fresh connection; none may be judged by the previous mode.
The embedded default also counts rate limits exactly: a 30/60 s rule lets exactly 30 through.
"""

import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ratelimits.limiter import window_of
from valhalla_ops.tests.services import free_port, postgres_url

BASE_DIR = Path(__file__).resolve().parents[2]
ROUNDS = 10
WRITES = 25


@dataclass
class Deployment:
    base: str
    env: dict[str, str]
    access_log: Path

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=BASE_DIR,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        return result.stdout

    def key(self, group: str) -> str:
        name = f"{group}-{uuid.uuid4().hex[:8]}"
        out = self.manage(
            "create_api_client", "--name", name, "--type", "service", "--group", group
        )
        return out.strip().splitlines()[-1]

    def pids(self) -> set[str]:
        """The worker processes that answered a write."""
        lines = self.access_log.read_text().splitlines()
        return {line.split()[0] for line in lines if " PATCH " in line}


def serve(env: dict[str, str], tmp_path: Path) -> Iterator[Deployment]:
    port = free_port()
    log = tmp_path / "access.log"
    command = [
        sys.executable, "-m", "gunicorn", "valhalla_ops.wsgi", "--config", "gunicorn.conf.py",
        "--access-logfile", str(log), "--access-logformat", "%(p)s %(m)s %(s)s %(U)s",
    ]  # fmt: skip
    env = {**env, "BIND": f"127.0.0.1:{port}", "GUNICORN_ACCESSLOG": str(log)}
    with (tmp_path / "server.log").open("wb") as server_log:
        process = subprocess.Popen(
            command, cwd=BASE_DIR, env=env, stdout=server_log, stderr=subprocess.STDOUT
        )
    try:
        wait_until_up(port, process, tmp_path / "server.log")
        yield Deployment(f"http://127.0.0.1:{port}", env, log)
    finally:
        process.terminate()
        process.wait(timeout=60)


def wait_until_up(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"gunicorn on port {port} did not start")


def base_env(tmp_path: Path) -> dict[str, str]:
    """The environment of `make run`: no tuning of processes or threads, metrics per process."""
    drop = {"DATABASE_URL", "REDIS_URL", "WEB_CONCURRENCY", "GUNICORN_THREADS"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    metrics = tmp_path / "prometheus"
    metrics.mkdir()
    return {**env, "RATELIMIT_ENABLED": "1", "PROMETHEUS_MULTIPROC_DIR": str(metrics)}


@pytest.fixture
def postgres_redis(postgres, redis_url, redis_client, tmp_path) -> Iterator[Deployment]:
    env = {
        **base_env(tmp_path),
        "DATABASE_URL": postgres_url(),
        "REDIS_URL": redis_url,
        "CACHE_KEY_PREFIX": f"vo-test-{uuid.uuid4().hex[:8]}",
    }
    yield from serve(env, tmp_path)


@pytest.fixture
def embedded(tmp_path) -> Iterator[Deployment]:
    """The embedded default: a SQLite file, no Redis, served as `make run` serves it."""
    env = {**base_env(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"],
        cwd=BASE_DIR,
        env=env,
        check=True,
        timeout=300,
    )
    yield from serve(env, tmp_path)


def switch(deployment: Deployment, key: str, mode: str) -> None:
    response = httpx.post(
        f"{deployment.base}/system/maintenance/state/{mode}?reason=round",
        headers={"X-API-Key": key},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json()["mode"] == mode


def writes(deployment: Deployment, key: str, client_id: int) -> Counter:
    """WRITES writes at once, each on a new connection (httpx.patch opens a fresh client)."""

    def one(n: int) -> int:
        return httpx.patch(
            f"{deployment.base}/system/clients/{client_id}",
            json={"description": f"write {n}"},
            headers={"X-API-Key": key, "Connection": "close"},
            timeout=30,
        ).status_code

    with ThreadPoolExecutor(max_workers=WRITES) as pool:
        return Counter(pool.map(one, range(WRITES)))


def run_rounds(deployment: Deployment) -> dict[str, Counter]:
    admin, operator = deployment.key("ops-admin"), deployment.key("ops-operator")
    target = httpx.post(
        f"{deployment.base}/system/clients/",
        json={"name": "write-target", "client_type": "service"},
        headers={"X-API-Key": operator},
        timeout=30,
    ).json()["id"]
    seen: dict[str, Counter] = {"read_only": Counter(), "normal": Counter()}
    for _round in range(ROUNDS):
        for mode in ("read_only", "normal"):
            switch(deployment, admin, mode)
            seen[mode] += writes(deployment, operator, target)
    return seen


@pytest.mark.real_clock
@pytest.mark.django_db(transaction=True)
def test_switches_are_exact_over_two_gunicorn_workers_on_postgres_and_redis(postgres_redis):
    seen = run_rounds(postgres_redis)

    assert seen["read_only"] == Counter({503: ROUNDS * WRITES})  # none accepted
    assert seen["normal"] == Counter({200: ROUNDS * WRITES})  # none refused
    assert len(postgres_redis.pids()) == 2  # both workers served writes


@pytest.mark.real_clock
def test_switches_are_exact_on_the_embedded_default(embedded):
    seen = run_rounds(embedded)

    assert seen["read_only"] == Counter({503: ROUNDS * WRITES})
    assert seen["normal"] == Counter({200: ROUNDS * WRITES})
    assert len(embedded.pids()) == 1  # one process, with threads


@pytest.mark.real_clock
def test_a_30_per_minute_rule_lets_exactly_30_through_on_the_embedded_default(embedded):
    operator = embedded.key("ops-operator")
    rule = httpx.post(
        f"{embedded.base}/system/ratelimits/rules",
        json={"scope": "path", "key": "/system/logs", "max_requests": 30, "window_seconds": 60},
        headers={"X-API-Key": operator},
        timeout=30,
    ).json()
    counter = f"vo:rl:{rule['id']}:60:/system/logs"  # the server's counter (no cache prefix set)
    _index, start = window_of(counter, 60, time.time())
    if start + 60 - time.time() < 20:  # do not straddle a window boundary
        time.sleep(start + 60 - time.time() + 1)
    time.sleep(1.5)  # the server picks up the new rule (RATELIMIT_RULES_CACHE_SECONDS)

    def one(_n: int) -> int:
        return httpx.get(
            f"{embedded.base}/system/logs", headers={"Connection": "close"}, timeout=30
        ).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = Counter(pool.map(one, range(60)))

    assert results == Counter({401: 30, 429: 30})  # anonymous: past the limiter, then DRF's 401

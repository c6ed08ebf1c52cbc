"""/metrics across processes: with PROMETHEUS_MULTIPROC_DIR every process counts into one place.

The processes are real: `manage.py` commands and snippets, and gunicorn with two workers. They
share this run's PostgreSQL database, or on SQLite a database file of their own.
"""

import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from django.db import connection
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from valhalla_ops import metrics
from valhalla_ops.tests.services import free_port, postgres_url

ROOT = Path(__file__).resolve().parents[2]
BAD_KEYS = 6
SCRAPES = 8
URL = "http://127.0.0.1:{port}/system/ratelimits/snapshots"  # a bad key is counted on any API
REFUSED = {"method": "GET", "status": "4xx", "view": "ratelimitsnapshot-list"}  # those 401s

# Every metric the project defines, touched `n` times (the histogram observes n/4, exact in binary).
WORK = """
from notify.dispatcher import deliveries
from valhalla_ops import metrics
metrics.ratelimit_decisions.labels("allowed").inc({n})
metrics.ratelimit_store_errors.inc({n})
metrics.shield_blocked.labels("read_only").inc({n})
metrics.api_key_failures.inc({n})
metrics.worker_items.labels("notify").inc({n})
metrics.worker_step_seconds.labels("notify").observe({n} / 4)
deliveries.labels("email", "sent").inc({n})
metrics.http_responses.labels("GET", "5xx", "ratelimitrule-list").inc({n})
metrics.admin_ops.labels("snapshot_ratelimits", "ok").inc({n})
metrics.outage_responses.labels("database").inc({n})
"""
SCRAPE = "from django.test import Client; print(Client().get('/metrics').content.decode())"


def environment(database_url: str, **extra: str) -> dict[str, str]:
    unset = {"DATABASE_URL", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR"}
    base = {key: value for key, value in os.environ.items() if key not in unset}
    return {
        **base,
        "DJANGO_SETTINGS_MODULE": "valhalla_ops.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": "",  # local memory: nothing shared but the database and the directory
        "ALLOWED_HOSTS": "127.0.0.1,testserver",
        "GUNICORN_ACCESSLOG": "/dev/null",
        **extra,
    }


def manage(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def shell(env: dict[str, str], code: str) -> subprocess.Popen:
    return manage(env, "shell", "--no-imports", "-c", code)


def finish(*processes: subprocess.Popen) -> list[str]:
    """Wait for processes started together; their output, or the error of the first that failed."""
    outputs = [process.communicate(timeout=60) for process in processes]
    for process, (_out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err[-3000:]
    return [out for out, _err in outputs]


@pytest.fixture
def database_url(request, tmp_path) -> str:
    """A migrated database other processes can use: this run's PostgreSQL one, or a new file."""
    if connection.vendor == "postgresql":
        request.getfixturevalue("transactional_db")  # committed rows, seen by the processes
        return postgres_url()
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    finish(manage(environment(url), "migrate", "--noinput", "--verbosity", "0"))
    return url


@pytest.fixture
def multiproc_dir(tmp_path) -> Path:
    path = tmp_path / "prometheus"
    path.mkdir()
    return path


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a scrape by name and labels; a sample emitted twice fails the test."""
    found: dict[tuple[str, frozenset], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in found, f"{key} is emitted twice"
            found[key] = sample.value
    return found


def value(found: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def type_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("# TYPE ")]


def test_a_scrape_equals_one_process_doing_all_the_work(database_url, multiproc_dir):
    shared = environment(database_url, PROMETHEUS_MULTIPROC_DIR=str(multiproc_dir))
    alone = environment(database_url)
    finish(shell(shared, WORK.format(n=2)), shell(shared, WORK.format(n=5)))

    merged, reference = finish(
        shell(shared, SCRAPE), shell(alone, WORK.format(n=2) + WORK.format(n=5) + SCRAPE)
    )

    # Names, labels and values as one process would report them; prometheus-client keeps no
    # `_created` series in multiprocess mode.
    expected = {key: v for key, v in samples(reference).items() if not key[0].endswith("_created")}
    assert samples(merged) == expected
    assert value(samples(merged), "valhalla_ratelimit_decisions_total", outcome="allowed") == 7
    assert value(samples(merged), "valhalla_worker_step_seconds_sum", step="notify") == 1.75
    responses = {"method": "GET", "status": "5xx", "view": "ratelimitrule-list"}
    assert value(samples(merged), "valhalla_http_responses_total", **responses) == 7
    ops = {"action": "snapshot_ratelimits", "outcome": "ok"}
    assert value(samples(merged), "valhalla_admin_ops_total", **ops) == 7
    assert sorted(type_lines(merged)) == sorted(
        line for line in type_lines(reference) if "_created " not in line
    )
    assert len(set(type_lines(merged))) == len(type_lines(merged))


def start_gunicorn(port: int, env: dict[str, str]) -> subprocess.Popen:
    """gunicorn with two workers, returned once both loaded the project (each made its file)."""
    command = [
        sys.executable, "-m", "gunicorn", "valhalla_ops.wsgi", "--config", "gunicorn.conf.py",
        "--bind", f"127.0.0.1:{port}", "--workers", "2",
    ]  # fmt: skip
    server = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    directory = Path(env["PROMETHEUS_MULTIPROC_DIR"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {server.communicate()[1].decode()[-2000:]}")
        pids = workers(server.pid)
        if len(pids) == 2 and all((directory / f"counter_{pid}.db").exists() for pid in pids):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"gunicorn on port {port}: no two workers with a file in {directory}")


def workers(master: int) -> set[int]:
    """The live worker processes of a gunicorn master (Linux /proc)."""
    children = Path(f"/proc/{master}/task/{master}/children")
    return {int(pid) for pid in children.read_text().split()} if children.exists() else set()


def failures_in(directory: Path, pid: int) -> float:
    """The API-key failures one process wrote to its own file."""
    for metric in MultiProcessCollector.merge([str(directory / f"counter_{pid}.db")]):
        for sample in metric.samples:
            if sample.name == "valhalla_api_key_failures_total":
                return sample.value
    return 0.0


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30)  # a new connection
    assert response.status_code == 200, response.text[:500]
    assert len(set(type_lines(response.text))) == len(type_lines(response.text))
    return samples(response.text)


def test_every_scrape_sums_the_web_workers_and_the_other_processes(database_url, multiproc_dir):
    env = environment(database_url, PROMETHEUS_MULTIPROC_DIR=str(multiproc_dir))
    finish(
        shell(env, "from valhalla_ops import metrics; metrics.ratelimit_decisions.labels('allowed').inc(2)"),
        shell(env, "from valhalla_ops import metrics; metrics.ratelimit_decisions.labels('allowed').inc(5)"),
        manage(env, "run_worker", "--once"),
        manage(env, "maintenance_mode", "read_only", "--reason", "metrics test"),
    )  # fmt: skip
    port = free_port()
    server = start_gunicorn(port, env)
    try:
        refused = [
            httpx.get(URL.format(port=port), headers={"X-API-Key": "nope"}, timeout=30)
            for _ in range(BAD_KEYS)
        ]
        scrapes = [scrape(port) for _ in range(SCRAPES)]
    finally:
        server.terminate()
        server.wait(timeout=30)

    assert [response.status_code for response in refused] == [401] * BAD_KEYS
    # One file per process: two snippets, run_worker, maintenance_mode and the two web workers.
    assert len(list(multiproc_dir.glob("counter_*.db"))) == 6
    for found in scrapes:  # whichever worker answered
        assert value(found, "valhalla_ratelimit_decisions_total", outcome="allowed") == 7
        assert value(found, "valhalla_api_key_failures_total") == BAD_KEYS
        assert value(found, "valhalla_http_responses_total", **REFUSED) == BAD_KEYS
        assert value(found, "valhalla_worker_step_seconds_count", step="notify") == 1
        assert value(found, "valhalla_maintenance_mode", mode="read_only") == 1  # from the database
        assert value(found, "valhalla_maintenance_mode", mode="normal") == 0


def test_a_worker_that_exits_keeps_its_counts_and_loses_its_live_gauges(
    database_url, multiproc_dir
):
    env = environment(database_url, PROMETHEUS_MULTIPROC_DIR=str(multiproc_dir))
    port = free_port()
    server = start_gunicorn(port, env)
    try:
        for _ in range(BAD_KEYS):
            httpx.get(URL.format(port=port), headers={"X-API-Key": "nope"}, timeout=30)
        # The worker that answered most of them: it surely counted some.
        gone = max(workers(server.pid), key=lambda pid: failures_in(multiproc_dir, pid))
        counted_by_gone = failures_in(multiproc_dir, gone)
        live_gauge = multiproc_dir / f"gauge_livesum_{gone}.db"  # what a `livesum` gauge writes
        live_gauge.touch()
        os.kill(gone, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while (live_gauge.exists() or len(workers(server.pid) - {gone}) < 2) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.05)
        removed = not live_gauge.exists()
        found = scrape(port) if removed else {}  # a stale empty file would fail the scrape
    finally:
        server.terminate()
        server.wait(timeout=30)

    assert counted_by_gone > 0
    assert removed  # gunicorn.conf.py's child_exit hook
    assert value(found, "valhalla_api_key_failures_total") == BAD_KEYS


def test_child_exit_hook_cleans_up_in_multiprocess_mode_only(monkeypatch, tmp_path):
    hook = runpy.run_path(str(ROOT / "gunicorn.conf.py"))["child_exit"]
    live_gauge = tmp_path / "gauge_livesum_4242.db"
    live_gauge.touch()
    worker = SimpleNamespace(pid=4242)  # the one attribute of gunicorn's Worker the hook reads

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    hook(None, worker)  # single-process mode: nothing to clean, and no error
    kept = live_gauge.exists()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    hook(None, worker)

    assert kept
    assert not live_gauge.exists()


def test_a_missing_directory_stops_start_up_naming_the_variable(tmp_path):
    missing = tmp_path / "not-there"
    env = environment("sqlite:///:memory:", PROMETHEUS_MULTIPROC_DIR=str(missing))

    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert f"PROMETHEUS_MULTIPROC_DIR={str(missing)!r} is not a directory" in result.stderr
    assert not missing.exists()


@pytest.mark.django_db
def test_without_the_directory_a_scrape_serves_this_process(client):
    before = samples(client.get("/metrics").content.decode())

    metrics.api_key_failures.inc()
    text = client.get("/metrics").content.decode()

    assert metrics.MULTIPROCESS_DIR is None
    assert metrics.scrape_registry() is metrics.registry
    after = samples(text)  # fails on a sample emitted twice
    assert value(after, "valhalla_api_key_failures_total") == (
        value(before, "valhalla_api_key_failures_total") + 1
    )
    assert "valhalla_api_key_failures_created" in text  # this process's own registry
    assert "valhalla_outbox_messages" in text
    assert len(set(type_lines(text))) == len(type_lines(text))

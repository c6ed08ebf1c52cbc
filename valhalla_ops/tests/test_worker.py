import os
import signal
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from valhalla_ops import registry
from valhalla_ops.worker import Worker

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _db_for_close_old_connections(db):
    """Each loop closes stale connections, which touches the connection handler."""


def test_worker_once_runs_steps_until_every_queue_is_empty():
    queue = [3, 2, 0]
    seen: list[int] = []

    def step() -> int:
        handled = queue.pop(0) if queue else 0
        seen.append(handled)
        return handled

    handled = Worker([("drain", step)], interval=0.01).run(once=True)

    assert handled == 5
    assert seen == [3, 2, 0]


def test_a_failing_step_does_not_stop_the_others():
    calls: list[str] = []

    def broken() -> int:
        calls.append("broken")
        raise RuntimeError("boom")

    def fine() -> int:
        calls.append("fine")
        return 0

    Worker([("broken", broken), ("fine", fine)], interval=0.01).run(once=True)

    assert calls == ["broken", "fine"]


@pytest.mark.django_db
def test_run_worker_once_through_the_command(monkeypatch):
    counts = iter([2, 0])
    monkeypatch.setitem(registry.worker_steps._entries, "test_step", lambda: next(counts, 0))
    out = StringIO()

    call_command("run_worker", "--once", "--only", "test_step", stdout=out)

    assert "stopped after 2 item(s)" in out.getvalue()


@pytest.mark.django_db
def test_run_worker_refuses_an_unknown_step():
    with pytest.raises(CommandError, match="Unknown step"):
        call_command("run_worker", "--once", "--only", "nope")


def test_run_worker_stops_cleanly_on_sigterm(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    database = tmp_path / "worker.sqlite3"
    env["DATABASE_URL"] = f"sqlite:///{database}"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120
    )
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "run_worker", "--interval", "30"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert worker.stdout is not None  # stdout=PIPE
    first_line = worker.stdout.readline()  # printed once the signal handlers are about to be set
    assert first_line.startswith("worker: steps"), first_line
    time.sleep(1)

    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    output, _ = worker.communicate(timeout=20)

    assert worker.returncode == 0, output
    assert time.monotonic() - started < 10  # the 30 s idle wait is interrupted at once
    assert "worker: stopped" in output

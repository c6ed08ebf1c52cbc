"""`make run` on a busy port stops at once, before it empties the metrics of the server there."""

import shutil
import socket
import subprocess

from valhalla_ops.tests.services import unavailable
from valhalla_ops.tests.test_settings import ROOT


def test_make_run_on_a_busy_port_says_which_port_to_use_and_touches_nothing(tmp_path):
    if shutil.which("make") is None:
        unavailable("make is not installed")
    metrics = tmp_path / "prometheus"
    metrics.mkdir()
    counters = metrics / "counter_1234.db"
    counters.write_bytes(b"the first server's counters")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        done = subprocess.run(
            ["make", "--no-print-directory", "run", f"PORT={port}", f"METRICS_DIR={metrics}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert done.returncode != 0
    assert f"port {port} is busy, use `make run PORT={port + 1}`" in done.stderr
    assert counters.read_bytes() == b"the first server's counters"
    assert "migrate" not in done.stdout  # nothing ran before the check


def test_make_run_checks_the_port_before_anything_else():
    done = subprocess.run(
        ["make", "--no-print-directory", "--dry-run", "run", "PORT=8000"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = done.stdout.splitlines()

    first_check = next(i for i, line in enumerate(lines) if "socket" in line)
    emptied = next(i for i, line in enumerate(lines) if "rm -rf" in line)
    assert first_check < emptied
    assert first_check == 0

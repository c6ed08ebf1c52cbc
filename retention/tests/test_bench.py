"""The purge benchmark runs end to end at a small size (the full size is in docs/BENCHMARKS.md)."""

import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

BENCH = Path(settings.BASE_DIR) / "bench"


def bench_database_url(tmp_path: Path) -> str:
    """This run's PostgreSQL test database (committed rows), or a new SQLite file."""
    if connection.vendor != "postgresql":
        return f"sqlite:///{tmp_path / 'bench.sqlite3'}"
    db = connection.settings_dict
    auth = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def run_bench(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        cwd=BENCH.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.django_db(transaction=True)
def test_purge_benchmark_small(tmp_path):
    out = run_bench(
        "purge_speed.py",
        "--database-url",
        bench_database_url(tmp_path),
        "--rows",
        "3000",
        "--rounds",
        "2",
    )

    assert "round 2: project" in out
    assert "purge 3,000 rows: project" in out
    assert "longest batch" in out

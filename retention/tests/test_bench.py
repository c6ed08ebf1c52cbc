"""The purge benchmark runs end to end at a small size (the full size is in docs/BENCHMARKS.md)."""

import pytest

from valhalla_ops.tests.services import database_url, run_bench


@pytest.mark.django_db(transaction=True)
def test_purge_benchmark_small(tmp_path):
    out = run_bench(
        "purge_speed.py",
        "--database-url",
        database_url(tmp_path),
        "--rows",
        "3000",
        "--rounds",
        "2",
    )

    assert "round 2: project" in out
    assert "purge 3,000 rows: project" in out
    assert "longest batch" in out

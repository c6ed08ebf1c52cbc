"""The export benchmark runs end to end at a small size (the full size is in docs/BENCHMARKS.md)."""

import pytest

from valhalla_ops.tests.services import database_url, run_bench


@pytest.mark.django_db(transaction=True)
def test_export_benchmark_small(tmp_path):
    out = run_bench(
        "export_speed.py",
        "--database-url",
        database_url(tmp_path),
        "--rows",
        "3000",
        "--small",
        "1000",
        "--rounds",
        "1",
    )

    assert "made 3,000 audit rows" in out
    assert "round 1: project" in out
    assert "export 3,000 rows: project" in out
    assert "ratio" in out
    assert "worker peak RSS" in out

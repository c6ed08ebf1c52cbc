"""Purge speed: the project's retention worker against a raw batched DELETE, same expired rows.

Each round makes the same expired audit rows (category "bench_purge", 400 days old) twice and
deletes them once each way, in an order that alternates between rounds (the audit table of the
benchmark database holds nothing else, and is vacuumed after each fill, so both start alike):

- project: the worker step (`retention.purger.run_retention`) purging the `audit_logs` policy
  (30 days): the claim of the category, batches sized by time in one statement each, the
  progress and lease per batch, the run and its audit row.
- baseline: a raw loop in autocommit, `DELETE FROM <audit table> WHERE id IN (SELECT id FROM
  <audit table> WHERE created_at < cutoff ORDER BY id LIMIT 5000)` until nothing is left.

The ratio is the median of the per-round ratios (goal: >= 0.8). The project's longest batch
(its lock time) is reported against RETENTION_BATCH_SECONDS (0.25 s).

    .venv/bin/python bench/purge_speed.py --database-url postgres://postgres@127.0.0.1:5432/vo_bench
    .venv/bin/python bench/purge_speed.py --database-url sqlite:///.run/bench-purges.sqlite3
    .venv/bin/python bench/purge_speed.py --rows 20000 --rounds 1   # a quick look
"""

import argparse
import sqlite3
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common, worker_data

CATEGORY = "bench_purge"
DAYS_TO_KEEP = 30
BASELINE_BATCH = 5000
RATIO_GOAL = 0.8
BASELINE_SQL = (
    "DELETE FROM valhalla_ops_systemlog WHERE id IN (SELECT id FROM valhalla_ops_systemlog "
    "WHERE created_at < {cutoff} ORDER BY id LIMIT {limit})"
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    worker_data.add_database_argument(parser)
    parser.add_argument("--rows", type=int, default=1_000_000, help="expired rows per purge")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 20 or not 1 <= args.rows <= 5_000_000:
        parser.error("--rounds must be 1..20 and --rows 1..5,000,000")
    return args


def fill(rows: int) -> None:
    """`rows` audit rows, 400 days old, older than the policy's cutoff."""
    from django.utils import timezone

    from valhalla_ops.models import SystemLog

    start = timezone.now() - timedelta(days=400)
    common.expect(not SystemLog.objects.filter(category=CATEGORY).exists(), "rows left over")
    worker_data.seed_audit_rows(rows, category=CATEGORY, start=start, per_day=rows)
    worker_data.vacuum()


def project_purge(rows: int) -> tuple[float, float, int, int]:
    """(seconds, longest batch in seconds, batches over 250 ms, batches) of the worker step."""
    from retention import batches, purger
    from retention.models import PurgeRun

    PurgeRun.objects.all().delete()  # the category is due again
    longest, slow, count = [0.0], [0], [0]
    run_batch = batches.run_batch

    def timed(*args: Any, **kwargs: Any) -> batches.Batch | None:
        batch = run_batch(*args, **kwargs)
        if batch is not None:
            longest[0] = max(longest[0], batch.seconds)
            slow[0] += batch.seconds > 0.25
            count[0] += 1
        return batch

    batches.run_batch = timed  # type: ignore[assignment]
    try:
        started = time.perf_counter()
        deleted = purger.run_retention()
        elapsed = time.perf_counter() - started
    finally:
        batches.run_batch = run_batch  # type: ignore[assignment]
    common.expect(deleted >= rows, f"the project deleted {deleted} rows, not {rows}")
    return elapsed, longest[0], slow[0], count[0]


def baseline_purge(database_url: str, rows: int) -> float:
    from django.utils import timezone

    cutoff = timezone.now() - timedelta(days=DAYS_TO_KEEP)
    deleted = 0
    if worker_data.is_sqlite(database_url):
        conn = sqlite3.connect(worker_data.sqlite_path(database_url), isolation_level=None)
        statement = BASELINE_SQL.format(cutoff="?", limit=BASELINE_BATCH)
        value: object = cutoff.replace(tzinfo=None).isoformat(" ")
    else:
        import psycopg

        conn = psycopg.connect(database_url, autocommit=True)  # type: ignore[assignment]
        statement = BASELINE_SQL.format(cutoff="%s", limit=BASELINE_BATCH)
        value = cutoff
    try:
        started = time.perf_counter()
        while True:
            count = conn.execute(statement, [value]).rowcount
            if count <= 0:
                break
            deleted += count
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    common.expect(deleted >= rows, f"the baseline deleted {deleted} rows, not {rows}")
    return elapsed


def main() -> None:
    args = parse_args()
    worker_data.setup(args.database_url)
    for line in worker_data.describe(args.database_url):
        print(line)
    print(f"load average: {common.load_average()}  (a shared machine: other work runs meanwhile)")
    from retention import services
    from valhalla_ops.principals import SYSTEM

    services.upsert_policy(
        actor=SYSTEM, category="audit_logs", days_to_keep=DAYS_TO_KEEP, enabled=True
    )
    from valhalla_ops.models import SystemLog

    # Only these rows: the baseline walks the id index from the start, through whatever rows
    # are there (in a real table the young rows come after the old ones).
    SystemLog.objects.all().delete()
    worker_data.vacuum()
    ratios, project_rates, base_rates, longest = [], [], [], []
    slow_batches, all_batches = 0, 0
    for round_number in range(args.rounds):
        timings: dict[str, float] = {}
        order = ["project", "baseline"] if round_number % 2 == 0 else ["baseline", "project"]
        for side in order:
            fill(args.rows)
            if side == "project":
                timings[side], batch, slow, count = project_purge(args.rows)
                longest.append(batch)
                slow_batches, all_batches = slow_batches + slow, all_batches + count
            else:
                timings[side] = baseline_purge(args.database_url, args.rows)
        project_rates.append(args.rows / timings["project"])
        base_rates.append(args.rows / timings["baseline"])
        ratios.append(timings["baseline"] / timings["project"])
        print(
            f"round {round_number + 1}: project {project_rates[-1]:,.0f} rows/s "
            f"(longest batch {longest[-1] * 1000:.0f} ms, {slow} of {count} over 250 ms), "
            f"baseline {base_rates[-1]:,.0f} rows/s, "
            f"ratio {ratios[-1]:.2f}  (load {common.load_average()})"
        )
    ratio = statistics.median(ratios)
    print(
        f"purge {args.rows:,} rows: project {statistics.median(project_rates):,.0f} rows/s, "
        f"baseline {statistics.median(base_rates):,.0f} rows/s; ratio {ratio:.2f} "
        f"(goal >= {RATIO_GOAL}: {common.verdict(ratio, RATIO_GOAL)}); longest batch "
        f"{max(longest) * 1000:.0f} ms; {slow_batches} of {all_batches} batches over 250 ms"
    )


if __name__ == "__main__":
    main()

"""Export speed: the project's export worker against the database's own bulk path, same rows.

Each round exports the same audit rows (`audit_log_export`, CSV, every column) twice, one after
the other, in an order that alternates between rounds:

- project: a pending ExportJob run by the worker step (`exports.runner.run_exports`): claim,
  the formatted rows into a temporary file, the file into the storage, the result recorded.
- baseline, PostgreSQL: psycopg's `cursor.copy()` of `COPY (SELECT <the same columns> FROM
  the audit table WHERE category = ... ORDER BY id) TO STDOUT (FORMAT csv)` into a file.
- baseline, SQLite: a raw `sqlite3` cursor over the same SELECT and a `csv.writer` loop.

The ratio is the median of the per-round ratios (goal: >= 0.8). Then the worker's memory: a new
process runs an export of the first 100,000 rows and another of all rows; the growth of its peak
RSS between the two is reported (goal: <= 64 MB).

    .venv/bin/python bench/export_speed.py --database-url postgres://postgres@127.0.0.1:5432/vo_bench
    .venv/bin/python bench/export_speed.py --database-url sqlite:///.run/bench-exports.sqlite3
    .venv/bin/python bench/export_speed.py --rows 20000 --rounds 1 --small 2000   # a quick look

The rows (category "bench_export", 100,000 a day, ending ten days ago) are made once and kept.
"""

import argparse
import csv
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common, worker_data

CATEGORY = "bench_export"
RSS_GOAL_MB = 64
RATIO_GOAL = 0.8


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    worker_data.add_database_argument(parser)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per export")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--small", type=int, default=100_000, help="rows of the small RSS export")
    parser.add_argument("--rss-child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 1 <= args.rounds <= 20 or not 1 <= args.small <= args.rows <= 5_000_000:
        parser.error("--rounds must be 1..20 and 1 <= --small <= --rows <= 5,000,000")
    return args


def first_day(args: argparse.Namespace) -> datetime:
    """Rows are made `--small` a day, ending ten days ago (younger than any purge cutoff)."""
    from django.utils import timezone

    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=10 + -(-args.rows // args.small))


def ensure_rows(args: argparse.Namespace) -> None:
    from valhalla_ops.models import SystemLog

    rows = SystemLog.objects.filter(category=CATEGORY)
    day_two = first_day(args) + timedelta(days=1)
    if rows.count() == args.rows and rows.filter(created_at__lt=day_two).count() == args.small:
        return
    rows.delete()
    started = time.perf_counter()
    worker_data.seed_audit_rows(
        args.rows, category=CATEGORY, start=first_day(args), per_day=args.small
    )
    worker_data.vacuum()
    print(f"made {args.rows:,} audit rows in {time.perf_counter() - started:.1f} s")


def params_for(args: argparse.Namespace, rows: int) -> dict[str, str]:
    """Filter params selecting the first day's rows (`--small`), or all of them."""
    params = {"format": "csv", "category": CATEGORY}
    if rows < args.rows:
        params["before_date"] = (first_day(args) + timedelta(days=1)).date().isoformat()
    return params


def project_export(params: dict[str, str], expected: int) -> float:
    """Seconds the worker step takes to run one export job of these rows."""
    from django.core.files.storage import default_storage

    from exports import runner
    from exports.models import ExportJob

    job = ExportJob.objects.create(job_type="audit_log_export", filter_params=params)
    started = time.perf_counter()
    handled = runner.run_exports()
    elapsed = time.perf_counter() - started
    job.refresh_from_db()
    common.expect(handled == 1 and job.status == "completed", f"export failed: {job.error_message}")
    common.expect(job.row_count == expected, f"exported {job.row_count} rows, not {expected}")
    if job.file.name:
        default_storage.delete(job.file.name)
    ExportJob.objects.filter(pk=job.pk).delete()
    return elapsed


def baseline_select() -> str:
    from exports.jobtypes import AUDIT_FIELDS

    columns = ", ".join(f'"{name}"' for name in AUDIT_FIELDS)
    return f"SELECT {columns} FROM valhalla_ops_systemlog WHERE category = '{CATEGORY}' ORDER BY id"


def baseline_copy(database_url: str) -> float:
    import psycopg

    with psycopg.connect(database_url) as conn, tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        with conn.cursor() as cursor:
            with cursor.copy(f"COPY ({baseline_select()}) TO STDOUT (FORMAT csv)") as copy:
                for data in copy:
                    out.write(data)
            out.flush()
        return time.perf_counter() - started


def baseline_sqlite(database_url: str) -> float:
    conn = sqlite3.connect(worker_data.sqlite_path(database_url))
    try:
        with tempfile.TemporaryFile("w+", newline="", encoding="utf-8") as out:
            started = time.perf_counter()
            writer = csv.writer(out)
            for row in conn.execute(baseline_select()):
                writer.writerow(row)
            out.flush()
            return time.perf_counter() - started
    finally:
        conn.close()


def measure_speed(args: argparse.Namespace) -> float:
    base = baseline_sqlite if worker_data.is_sqlite(args.database_url) else baseline_copy
    params = params_for(args, args.rows)
    project_export(params_for(args, args.small), args.small)  # warm up: the first connection
    ratios, project_rates, base_rates = [], [], []
    for round_number in range(args.rounds):
        timings: dict[str, float] = {}
        order = ["project", "baseline"] if round_number % 2 == 0 else ["baseline", "project"]
        for side in order:
            if side == "project":
                timings[side] = project_export(params, args.rows)
            else:
                timings[side] = base(args.database_url)
        project_rates.append(args.rows / timings["project"])
        base_rates.append(args.rows / timings["baseline"])
        ratios.append(timings["baseline"] / timings["project"])
        print(
            f"round {round_number + 1}: project {project_rates[-1]:,.0f} rows/s, "
            f"baseline {base_rates[-1]:,.0f} rows/s, ratio {ratios[-1]:.2f}  "
            f"(load {common.load_average()})"
        )
    ratio = statistics.median(ratios)
    print(
        f"export {args.rows:,} rows: project {statistics.median(project_rates):,.0f} rows/s, "
        f"baseline {statistics.median(base_rates):,.0f} rows/s; ratio {ratio:.2f} "
        f"(goal >= {RATIO_GOAL}: {common.verdict(ratio, RATIO_GOAL)})"
    )
    return ratio


def peak_rss_mb(args: argparse.Namespace, rows: int) -> float:
    """A new worker process exports `rows` rows; its peak RSS in MB."""
    params = json.dumps(params_for(args, rows))
    command = [sys.executable, __file__, "--database-url", args.database_url]
    command += ["--rows", str(args.rows), "--small", str(args.small), "--rss-child", params]
    env = worker_data.environment(args.database_url)
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    out, _ = process.communicate(timeout=1800)
    common.expect(process.returncode == 0, f"the export process failed ({process.returncode})")
    return float(out.strip().splitlines()[-1])


def rss_child(args: argparse.Namespace) -> None:
    params = json.loads(args.rss_child)
    expected = args.small if "before_date" in params else args.rows
    project_export(params, expected)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    args = parse_args()
    worker_data.setup(args.database_url)
    if args.rss_child:
        rss_child(args)
        return
    for line in worker_data.describe(args.database_url):
        print(line)
    print(f"load average: {common.load_average()}  (a shared machine: other work runs meanwhile)")
    ensure_rows(args)
    from exports.models import ExportJob

    ExportJob.objects.all().delete()
    with tempfile.TemporaryDirectory(prefix="export-bench-") as media:
        os.environ["MEDIA_ROOT"] = media
        from django.conf import settings

        settings.MEDIA_ROOT = media
        measure_speed(args)
        small, large = peak_rss_mb(args, args.small), peak_rss_mb(args, args.rows)
    growth = large - small
    print(
        f"worker peak RSS: {small:.1f} MB for {args.small:,} rows, {large:.1f} MB for "
        f"{args.rows:,} rows; growth {growth:.1f} MB (goal <= {RSS_GOAL_MB} MB: "
        f"{'met' if growth <= RSS_GOAL_MB else 'NOT met'})"
    )


if __name__ == "__main__":
    main()

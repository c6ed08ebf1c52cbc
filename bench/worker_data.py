"""Shared set-up of the worker benchmarks (exports, purges): the database and audit rows.

`--database-url` takes a PostgreSQL URL on loopback or an SQLite file URL (`sqlite:///path`).
The rows are made by the database itself (`generate_series`, or a recursive CTE on SQLite):
a million rows take seconds, not minutes.
"""

import argparse
import os
import sys
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/valhalla_ops_bench"
AUDIT_COLUMNS = (
    'level, category, action, message, context, "before", "after", actor_type, actor_id, actor, '
    "target_type, target_id, target, request_id, client_ip, created_at"
)

PG_SEED = f"""
INSERT INTO valhalla_ops_systemlog ({AUDIT_COLUMNS})
SELECT 'info', %s, 'bench.row', 'row ' || g || ' of a benchmark, with a comma',
       jsonb_build_object('i', g, 'path', '/system/exports', 'ok', true), NULL,
       jsonb_build_object('status', 'done'), 'system', '', 'worker:bench', 'exports.exportjob',
       g::text, 'job #' || g, 'req-' || g, '127.0.0.1',
       %s::timestamptz + (g - 1) * (interval '1 day' / %s)
FROM generate_series(1, %s) AS g
"""
SQLITE_SEED = f"""
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < %s)
INSERT INTO valhalla_ops_systemlog ({AUDIT_COLUMNS})
SELECT 'info', %s, 'bench.row', 'row ' || n || ' of a benchmark, with a comma',
       json_object('i', n, 'path', '/system/exports', 'ok', json('true')), NULL,
       json_object('status', 'done'), 'system', '', 'worker:bench', 'exports.exportjob',
       n, 'job #' || n, 'req-' || n, '127.0.0.1',
       datetime(%s, '+' || ((n - 1) * 86400 / %s) || ' seconds')
FROM g
"""


def add_database_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help="postgres://... on loopback (created if missing) or sqlite:///path",
    )


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite:")


def sqlite_path(url: str) -> str:
    return urlsplit(url).path


def environment(database_url: str) -> dict[str, str]:
    if is_sqlite(database_url):
        return {**os.environ, **common.BENCH_ENV, "DATABASE_URL": database_url, "REDIS_URL": ""}
    return common.bench_env(database_url, "")


def setup(database_url: str) -> None:
    """Create (PostgreSQL) and migrate the database; Django is set up in this process."""
    if not is_sqlite(database_url):
        common.ensure_database(database_url)
    common.setup_django("valhalla_ops.settings", environment(database_url))
    common.migrate_and_check_normal()


def seed_audit_rows(count: int, *, category: str, start: datetime, per_day: int) -> None:
    """`count` audit rows of `category`, `per_day` of them per day from `start` on."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(PG_SEED, [category, start, per_day, count])
        else:
            moment = start.strftime("%Y-%m-%d %H:%M:%S")
            cursor.execute(SQLITE_SEED, [count, category, moment, per_day])


def vacuum() -> None:
    """Clean the audit table, so every round starts from the same state (PostgreSQL)."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE valhalla_ops_systemlog")


def describe(database_url: str) -> list[str]:
    if is_sqlite(database_url):
        import sqlite3

        return [*common.machine(), f"sqlite: {sqlite3.sqlite_version} at {database_url}"]
    return common.machine(database_url=database_url)

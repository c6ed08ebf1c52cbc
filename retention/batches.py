"""One purge batch: delete the next expired rows after a primary key, in one short statement.

Batches walk the table by primary key (keyset): each starts after the highest key the last
one deleted, so it never rescans the dead index entries earlier batches left behind. Their
size follows their cost: `BatchSizer` grows a batch while it is cheap and shrinks it when it
holds its locks too long.

A model whose rows Django can delete without looking at them (no cascades, no delete signals)
loses each batch in one statement (`DELETE ... WHERE pk IN (SELECT ... LIMIT n)`);
otherwise Django's collector deletes the batch and its cascades in one transaction, and the
cascaded rows are counted apart. The run's progress is written in the batch's transaction.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from django.db import connections, models, transaction
from django.db.models import sql
from django.db.models.deletion import Collector

GROWTH = 1.5  # the most a batch grows over the last one


@dataclass
class BatchSizer:
    """Rows per batch, resized after each batch to keep its lock time under `target` seconds."""

    size: int
    max_size: int
    target: float

    def update(self, seconds: float) -> int:
        """Aim at a third of the target, so that a batch slower than the last (a busy moment)
        still stays under it; grow by half at most, shrink to a quarter at least."""
        aim = self.target / 3
        factor = GROWTH if seconds <= 0 else min(GROWTH, max(0.25, aim / seconds))
        self.size = max(1, min(self.max_size, round(self.size * factor)))
        return self.size


@dataclass(frozen=True)
class Batch:
    deleted: int
    cascaded: int
    last_pk: Any
    seconds: float


def can_fast_delete(rows: models.QuerySet) -> bool:
    return Collector(using=rows.db, origin=None).can_fast_delete(rows)


def next_rows(rows: models.QuerySet, *, after: Any, size: int) -> models.QuerySet:
    """The next `size` rows after the key `after`; filtering `rows` again re-checks age and
    protection at delete time."""
    ahead = rows if after is None else rows.filter(pk__gt=after)
    return rows.filter(pk__in=ahead.order_by("pk").values("pk")[:size])


def json_key(value: Any) -> Any:
    """A key as the run stores it (JSON): integers and strings as they are."""
    return value if isinstance(value, int | str) or value is None else str(value)


def _delete_statement(rows: models.QuerySet) -> tuple[str, tuple[Any, ...]]:
    query = rows.query.clone()
    query.__class__ = sql.DeleteQuery
    statement, params = query.get_compiler(rows.db).as_sql()
    return statement, tuple(params)


def _keys_statement(rows: models.QuerySet, *, after: Any, size: int) -> tuple[str, tuple[Any, ...]]:
    ahead = rows if after is None else rows.filter(pk__gt=after)
    keys = ahead.order_by("pk").values("pk")[:size]
    statement, params = keys.query.get_compiler(rows.db).as_sql()
    return statement, tuple(params)


def pg_batch_statement(
    rows: models.QuerySet, *, after: Any, size: int
) -> tuple[str, tuple[Any, ...]]:
    """PostgreSQL: `pk = ANY(ARRAY(SELECT ... LIMIT n))` makes the delete an index scan of the
    batch's own keys (`IN (SELECT ...)` is planned as a scan of the whole table); the category's
    conditions stay, checked on those rows only. One round trip also returns the count and the
    last key."""
    statement, params = _delete_statement(rows)
    head, _, conditions = statement.partition(" WHERE ")
    keys, key_params = _keys_statement(rows, after=after, size=size)
    pk = connections[rows.db].ops.quote_name(rows.model._meta.pk.column)
    delete = f"{head} WHERE ({conditions}) AND {pk} = ANY(ARRAY({keys}))"
    return (
        f"WITH gone AS ({delete} RETURNING {pk}) SELECT count(*), max({pk}) FROM gone",
        params + key_params,
    )


def fast_batch(rows: models.QuerySet, *, after: Any, size: int) -> Batch | None:
    """One DELETE statement; None when nothing is left."""
    connection = connections[rows.db]
    pk = connection.ops.quote_name(rows.model._meta.pk.column)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(*pg_batch_statement(rows, after=after, size=size))
            count, last = cursor.fetchone()
        else:
            statement, params = _delete_statement(next_rows(rows, after=after, size=size))
            cursor.execute(f"{statement} RETURNING {pk}", params)
            keys = [row[0] for row in cursor.fetchall()]
            count, last = len(keys), max(keys, default=None)
    seconds = time.perf_counter() - started
    if not count:
        return None
    return Batch(deleted=count, cascaded=0, last_pk=json_key(last), seconds=seconds)


def collector_batch(rows: models.QuerySet, *, after: Any, size: int) -> Batch | None:
    """Select the keys, then let Django delete them with their cascades (one transaction)."""
    ahead = rows if after is None else rows.filter(pk__gt=after)
    label = rows.model._meta.label
    started = time.perf_counter()
    with transaction.atomic(using=rows.db):
        keys = list(ahead.order_by("pk").values_list("pk", flat=True)[:size])
        if not keys:
            return None
        total, per_model = rows.filter(pk__in=keys).delete()
    seconds = time.perf_counter() - started
    deleted = per_model.get(label, 0)
    return Batch(
        deleted=deleted, cascaded=total - deleted, last_pk=json_key(keys[-1]), seconds=seconds
    )


def delete_batch(rows: models.QuerySet, *, after: Any, size: int, fast: bool) -> Batch | None:
    """Delete up to `size` expired rows after the key `after`; None when none is left."""
    if fast:
        return fast_batch(rows, after=after, size=size)
    return collector_batch(rows, after=after, size=size)


def run_batch(
    rows: models.QuerySet,
    *,
    after: Any,
    size: int,
    fast: bool,
    record: Callable[[Batch], None],
) -> Batch | None:
    """Delete one batch and `record` it (the run's progress) in one transaction: both commit,
    or neither. The batch's seconds are the transaction's: how long it held its locks."""
    started = time.perf_counter()
    with transaction.atomic(using=rows.db):
        batch = delete_batch(rows, after=after, size=size, fast=fast)
        if batch is None:
            return None
        record(batch)
    return replace(batch, seconds=time.perf_counter() - started)

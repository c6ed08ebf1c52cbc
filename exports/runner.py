"""The export runner (worker step "exports"): claim a job, stream its rows to storage, record.

The claim and the result are two short transactions; the export itself runs outside any
transaction, streaming rows into a temporary file that is then handed to the default storage,
so memory stays flat whatever the row count. The database formats the rows (`exports.bulk`):
PostgreSQL streams them with COPY, SQLite through a plain cursor loop; job types the planner
cannot express in SQL go through the Python writers. While the file is written, a thread of its
own renews the job's lease and records the rows written so far.
"""

import contextlib
import csv
import io
import logging
import os
import secrets
import tempfile
import threading
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import IO, Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import DatabaseError, connection, connections
from django.db.models import QuerySet

from exports import bulk, services
from exports.models import ExportJob
from exports.writers import WRITERS
from valhalla_ops.principals import SystemActor
from valhalla_ops.registry import ExportJobType

logger = logging.getLogger(__name__)

WORKER = SystemActor(username="worker:exports")
PROGRESS_SECONDS = 2.0  # the longest wait between two lease renewals (and progress updates)
PROGRESS_ROWS = 5000  # rows written between two progress counts (and claim checks)
# COPY's CSV mode with a quote and a delimiter JSON text never holds raw: one line per row.
JSONL_COPY = "FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01'"


class ClaimLost(Exception):
    """The job is no longer this worker's (it finished, failed, or was claimed again)."""


class LeaseKeeper:
    """Renews a running job's lease and records its progress, from a thread of its own: the
    export's connection is busy streaming."""

    def __init__(self, job: ExportJob) -> None:
        self.job_id, self.attempt = job.pk, job.attempts
        self.rows = 0
        self.every = min(settings.EXPORTS_LEASE_SECONDS / 4, PROGRESS_SECONDS)
        self._lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"export-{job.pk}-lease", daemon=True
        )

    def __enter__(self) -> "LeaseKeeper":
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            while not self._done.wait(self.every):
                if self._renew() is False:
                    self._lost.set()
                    return
        finally:
            connection.close()  # this thread's own connection

    def _renew(self) -> bool | None:
        try:
            return services.renew_export_lease(
                job_id=self.job_id, attempt=self.attempt, rows_written=self.rows
            )
        except DatabaseError:  # a busy or unreachable database: try again next time
            logger.warning("export %s: cannot renew the lease", self.job_id, exc_info=True)
            return None

    def add(self, rows: int) -> None:
        """Count rows written; stop the export if the job is no longer this worker's."""
        self.rows += rows
        if self._lost.is_set():
            raise ClaimLost(f"export {self.job_id}: the job is no longer this worker's")


def stream_rows(job_type: ExportJobType, params: dict[str, Any], rows: Any = None) -> Iterable[Any]:
    rows = job_type.rows(params) if rows is None else rows
    if isinstance(rows, QuerySet):  # fetch in chunks instead of loading every row
        return rows.iterator(chunk_size=settings.EXPORTS_CHUNK_SIZE)
    return rows


def storage_name(job: ExportJob, file_format: str) -> str:
    """Never from user input: the job id and a random token."""
    return f"exports/export-{job.pk}-{secrets.token_hex(8)}.{file_format}"


def copy_rows(
    raw: IO[bytes],
    plan: bulk.Plan,
    fields: list[str],
    file_format: str,
    keeper: LeaseKeeper,
    using: str,
) -> int:
    """PostgreSQL: COPY the formatted rows straight into the file."""
    if file_format == "csv":
        header = io.StringIO()
        csv.writer(header, lineterminator="\n").writerow(fields)
        raw.write(header.getvalue().encode())
    options = "FORMAT csv" if file_format == "csv" else JSONL_COPY
    write, pending = raw.write, 0
    with connections[using].cursor() as wrapper:
        cursor = wrapper.cursor
        with cursor.copy(f"COPY ({plan.sql}) TO STDOUT ({options})", plan.params) as copy:
            for chunk in copy:  # PostgreSQL sends each row as one message
                write(chunk)
                pending += 1
                if pending == PROGRESS_ROWS:
                    keeper.add(pending)
                    pending = 0
        keeper.add(pending)
        return int(cursor.rowcount)


def cursor_rows(
    raw: IO[bytes],
    plan: bulk.Plan,
    fields: list[str],
    file_format: str,
    keeper: LeaseKeeper,
    using: str,
) -> int:
    """SQLite: a plain cursor loop over the formatted rows."""
    text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
    count = 0
    with connections[using].cursor() as cursor:
        cursor.execute(plan.sql, plan.params)
        writer = csv.writer(text)
        if file_format == "csv":
            writer.writerow(fields)
        while batch := cursor.fetchmany(settings.EXPORTS_CHUNK_SIZE):
            if file_format == "csv":
                writer.writerows(batch)
            else:
                text.write("\n".join([row[0] for row in batch]))
                text.write("\n")
            count += len(batch)
            keeper.add(len(batch))
    text.flush()
    text.detach()  # keep `raw` open for the storage
    return count


def counted(rows: Iterable[Any], keeper: LeaseKeeper, every: int = PROGRESS_ROWS) -> Iterator[Any]:
    done = 0
    for row in rows:
        yield row
        done += 1
        if done == every:
            keeper.add(done)
            done = 0
    keeper.add(done)


def python_rows(
    raw: IO[bytes], rows: Iterable[Any], fields: list[str], file_format: str, keeper: LeaseKeeper
) -> int:
    """Any other job type: the Python writers, row by row."""
    text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
    count = WRITERS[file_format](text, fields, counted(rows, keeper))
    text.flush()
    text.detach()
    return count


def write_rows(
    raw: IO[bytes], job_type: ExportJobType, params: dict[str, Any], keeper: LeaseKeeper
) -> int:
    file_format = params.get("format", "csv")
    rows = job_type.rows(params)
    using = rows.db if isinstance(rows, QuerySet) else "default"
    vendor = connections[using].vendor
    plan = bulk.plan(rows, job_type.fields, file_format, vendor)
    if plan is not None and vendor == "postgresql":
        return copy_rows(raw, plan, job_type.fields, file_format, keeper, using)
    if plan is not None:
        return cursor_rows(raw, plan, job_type.fields, file_format, keeper, using)
    return python_rows(
        raw, stream_rows(job_type, params, rows), job_type.fields, file_format, keeper
    )


class SpooledFile(File):
    """The finished temporary file: a storage on the same disk moves it instead of copying."""

    def temporary_file_path(self) -> str:
        return str(getattr(self.file, "name", ""))


def write_export(job: ExportJob) -> tuple[str, int]:
    """Write the job's file to storage; returns (storage name, row count)."""
    job_type = services.get_job_type(job.job_type)
    params = services.parse_params(job_type=job_type, params=job.filter_params)
    file_format = params.get("format", "csv")
    raw = tempfile.NamedTemporaryFile(prefix="export-", delete=False)  # noqa: SIM115
    try:
        with raw, LeaseKeeper(job) as keeper:
            count = write_rows(raw.file, job_type, params, keeper)  # the file, not its wrapper
            raw.flush()
            raw.seek(0)
            name = default_storage.save(storage_name(job, file_format), SpooledFile(raw))
    finally:
        with contextlib.suppress(FileNotFoundError):  # moved into the storage, or not
            os.unlink(raw.name)
    return name, count


def run_export(job: ExportJob) -> ExportJob | None:
    """Run one claimed job; any error fails the job, never the loop."""
    attempt = job.attempts
    try:
        name, count = write_export(job)
    except Exception as error:
        logger.exception("export %s (%s) failed", job.pk, job.job_type)
        return services.fail_export_run(
            actor=WORKER, job_id=job.pk, attempt=attempt, error=f"{type(error).__name__}: {error}"
        )
    done = services.complete_export_run(
        actor=WORKER, job_id=job.pk, attempt=attempt, file_name=name, row_count=count
    )
    if done is None:  # the claim was lost (lease expired, job failed by hand): drop the file
        default_storage.delete(name)
    return done


def run_exports() -> int:
    """The worker step: run up to EXPORTS_BATCH_SIZE jobs; returns how many it ran."""
    handled = 0
    for _ in range(settings.EXPORTS_BATCH_SIZE):
        job = services.claim_export(actor=WORKER)
        if job is None:
            break
        run_export(job)
        handled += 1
    return handled

"""The export runner (worker step "exports"): claim a job, stream its rows to storage, record.

The claim and the result are two short transactions; the export itself runs outside any
transaction, streaming rows in chunks into a temporary file that is then handed to the
default storage, so memory stays flat whatever the row count.
"""

import io
import logging
import secrets
import tempfile
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db.models import QuerySet

from exports import services
from exports.models import ExportJob
from exports.writers import WRITERS
from valhalla_ops.principals import SystemActor
from valhalla_ops.registry import ExportJobType

logger = logging.getLogger(__name__)

WORKER = SystemActor(username="worker:exports")


def stream_rows(job_type: ExportJobType, params: dict[str, Any]) -> Iterable[Any]:
    rows = job_type.rows(params)
    if isinstance(rows, QuerySet):  # fetch in chunks instead of loading every row
        return rows.iterator(chunk_size=settings.EXPORTS_CHUNK_SIZE)
    return rows


def storage_name(job: ExportJob, file_format: str) -> str:
    """Never from user input: the job id and a random token."""
    return f"exports/export-{job.pk}-{secrets.token_hex(8)}.{file_format}"


def write_export(job: ExportJob) -> tuple[str, int]:
    """Write the job's file to storage; returns (storage name, row count)."""
    job_type = services.get_job_type(job.job_type)
    params = services.parse_params(job_type=job_type, params=job.filter_params)
    file_format = params.get("format", "csv")
    with tempfile.TemporaryFile() as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        count = WRITERS[file_format](text, job_type.fields, stream_rows(job_type, params))
        text.flush()
        text.detach()  # keep `raw` open for the storage
        raw.seek(0)
        name = default_storage.save(storage_name(job, file_format), File(raw))
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

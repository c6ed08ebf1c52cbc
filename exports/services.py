"""Every change to export jobs: atomic, audited, and announced through notify events."""

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from rest_framework import exceptions, serializers

from exports.models import ExportJob
from notify.services import emit_event
from valhalla_ops import registry
from valhalla_ops.audit import Actor, describe_actor, record_change
from valhalla_ops.exceptions import ServiceError
from valhalla_ops.registry import ExportJobType
from valhalla_ops.writeguard import bookkeeping

logger = logging.getLogger(__name__)

Status = ExportJob.Status
# The only moves the status API allows; retry and cancel are separate, admin-side services.
TRANSITIONS: dict[str, set[str]] = {
    Status.PENDING: {Status.RUNNING, Status.FAILED},
    Status.RUNNING: {Status.COMPLETED, Status.FAILED},
}
ACTIONS: dict[str, str] = {
    Status.RUNNING: "exports.start",
    Status.COMPLETED: "exports.complete",
    Status.FAILED: "exports.fail",
}
EVENTS: dict[str, str] = {Status.COMPLETED: "export.completed", Status.FAILED: "export.failed"}


def snapshot(job: ExportJob) -> dict[str, Any]:
    """The audited view of a job."""
    return {
        "job_type": job.job_type,
        "status": job.status,
        "filter_params": job.filter_params,
        "requested_by": job.requested_by,
        "storage_url": job.storage_url,
        "error_message": job.error_message,
        "row_count": job.row_count,
        "attempts": job.attempts,
    }


def get_job_type(name: str) -> ExportJobType:
    job_type = registry.export_job_types.get(name)
    if job_type is None:
        known = ", ".join(sorted(registry.export_job_types.names())) or "none"
        raise ServiceError(f"Unknown job_type {name!r}. Registered: {known}.", field="job_type")
    return job_type


def parse_params(*, job_type: ExportJobType, params: Any) -> dict[str, Any]:
    """The typed params (dates as dates); a 400 naming each bad field otherwise."""
    serializer = job_type.params_serializer(data=params if params is not None else {})
    if not serializer.is_valid():
        raise serializers.ValidationError({"filter_params": serializer.errors})
    return dict(serializer.validated_data)


def normalize_params(*, job_type: ExportJobType, params: Any) -> dict[str, Any]:
    """The params as stored: validated, defaults filled in, JSON-ready."""
    typed = parse_params(job_type=job_type, params=params)
    return dict(job_type.params_serializer().to_representation(typed))


def check_can_read(*, actor: Actor, job_type: ExportJobType) -> None:
    """Exporting data needs the permission to read that data."""
    if (
        job_type.permission
        and hasattr(actor, "has_perm")
        and not actor.has_perm(job_type.permission)
    ):
        raise exceptions.PermissionDenied(
            f"Exporting {job_type.name} needs the permission {job_type.permission}."
        )


def check_can_download(*, actor: Actor, job: ExportJob) -> None:
    """A job type that is no longer registered names no permission: deny."""
    job_type = registry.export_job_types.get(job.job_type)
    if job_type is None:
        raise exceptions.PermissionDenied(f"Job type {job.job_type!r} is no longer registered.")
    check_can_read(actor=actor, job_type=job_type)


def event_payload(job: ExportJob) -> dict[str, Any]:
    return {
        "export_id": job.pk,
        "job_type": job.job_type,
        "status": job.status,
        "requested_by": job.requested_by,
        "storage_url": job.storage_url,
        "row_count": job.row_count,
        "error_message": job.error_message,
    }


def download_path(job: ExportJob) -> str:
    return reverse("exportjob-download", kwargs={"pk": job.pk})


@transaction.atomic
def create_export(
    *, actor: Actor, job_type: str, filter_params: Any = None, requested_by: str = ""
) -> ExportJob:
    """Queue a job; the worker (or an external one, through the status API) runs it."""
    kind = get_job_type(job_type)
    check_can_read(actor=actor, job_type=kind)
    params = normalize_params(job_type=kind, params=filter_params)
    actor_name = describe_actor(actor)[2]
    job = ExportJob.objects.create(
        job_type=job_type,
        filter_params=params,
        requested_by=requested_by or actor_name,
        requested_by_actor=actor_name,
    )
    record_change(actor=actor, action="exports.create", target=job, after=snapshot(job))
    emit_event(topic="export.requested", payload=event_payload(job), subject=f"Export #{job.pk}")
    return job


def _change(*, actor: Actor, job: ExportJob, action: str, **fields: Any) -> ExportJob:
    """Apply fields to a locked job, audit it, and announce a finished job."""
    before = snapshot(job)
    for name, value in fields.items():
        setattr(job, name, value)
    job.save(update_fields=[*fields, "updated_at"])
    record_change(actor=actor, action=action, target=job, before=before, after=snapshot(job))
    if job.status in EVENTS:
        emit_event(
            topic=EVENTS[job.status],
            payload=event_payload(job),
            subject=f"Export #{job.pk} {job.status}",
        )
    return job


def check_transition(current: str, new: str) -> None:
    if new not in TRANSITIONS.get(current, set()):
        raise ServiceError(f"Illegal transition {current} → {new}.", field="status")


def _status_fields(status: str, storage_url: str, error_message: str) -> dict[str, Any]:
    now = timezone.now()
    if status == Status.COMPLETED:
        if not storage_url:
            raise ServiceError("storage_url is required to complete a job.", field="storage_url")
        return {"storage_url": storage_url, "completed_at": now, "locked_until": None}
    if storage_url:
        raise ServiceError("storage_url applies only to status completed.", field="storage_url")
    if status == Status.RUNNING:
        return {"started_at": now}
    return {"error_message": error_message, "locked_until": None}


@transaction.atomic
def set_export_status(
    *, actor: Actor, job: ExportJob, status: str, storage_url: str = "", error_message: str = ""
) -> ExportJob:
    """Move a job along pending → running → completed | failed (or pending → failed)."""
    job = ExportJob.objects.select_for_update().get(pk=job.pk)  # one transition at a time
    check_transition(job.status, status)
    if error_message and status != Status.FAILED:
        raise ServiceError("error_message applies only to status failed.", field="error_message")
    fields = _status_fields(status, storage_url, error_message)
    return _change(actor=actor, job=job, action=ACTIONS[status], status=status, **fields)


@transaction.atomic
def retry_export(*, actor: Actor, job: ExportJob) -> ExportJob:
    """Put a failed job back in the queue, as new."""
    job = ExportJob.objects.select_for_update().get(pk=job.pk)
    if job.status != Status.FAILED:
        raise ServiceError(f"Only failed jobs can be retried; #{job.pk} is {job.status}.")
    fields = {"error_message": "", "attempts": 0, "locked_until": None, "started_at": None}
    return _change(actor=actor, job=job, action="exports.retry", status=Status.PENDING, **fields)


@transaction.atomic
def cancel_export(*, actor: Actor, job: ExportJob) -> ExportJob:
    """Fail a job that has not started yet."""
    job = ExportJob.objects.select_for_update().get(pk=job.pk)
    if job.status != Status.PENDING:
        raise ServiceError(f"Only pending jobs can be cancelled; #{job.pk} is {job.status}.")
    message = f"Cancelled by {describe_actor(actor)[2]}."
    return _change(
        actor=actor, job=job, action="exports.cancel", status=Status.FAILED, error_message=message
    )


@transaction.atomic
def delete_export(*, actor: Actor, job: ExportJob) -> None:
    """Delete a job that is not running; its file goes after the commit."""
    job = ExportJob.objects.select_for_update().get(pk=job.pk)
    if job.status == Status.RUNNING:
        raise ServiceError(f"Job #{job.pk} is running; wait for it to finish or fail.")
    record_change(actor=actor, action="exports.delete", target=job, before=snapshot(job))
    job.delete()


# --- the runner's bookkeeping: allowed in read-only mode (exports keep running) ---------


def _give_up(actor: Actor, job: ExportJob) -> ExportJob:
    """Its workers kept dying (lease expired each time): stop trying."""
    message = f"Gave up after {job.attempts} attempts: the worker's lease expired each time."
    return _change(
        actor=actor,
        job=job,
        action="exports.fail",
        status=Status.FAILED,
        error_message=message,
        locked_until=None,
    )


def _claim_one(actor: Actor) -> ExportJob | None:
    now = timezone.now()
    job = (
        ExportJob.objects.claimable()
        .order_by("created_at", "id")
        .select_for_update(skip_locked=True)
        .first()
    )
    if job is None:
        return None
    if job.attempts >= settings.EXPORTS_MAX_ATTEMPTS:
        return _give_up(actor, job)
    return _change(
        actor=actor,
        job=job,
        action="exports.start",
        status=Status.RUNNING,
        started_at=now,
        locked_until=now + timedelta(seconds=settings.EXPORTS_LEASE_SECONDS),
        attempts=job.attempts + 1,
        rows_written=0,
    )


def claim_export(*, actor: Actor) -> ExportJob | None:
    """Lease the oldest claimable job to this worker (skipping rows other workers hold)."""
    with bookkeeping(), transaction.atomic():
        while True:
            job = _claim_one(actor)
            if job is None or job.status == Status.RUNNING:
                return job


def _fenced(job_id: int, attempt: int) -> ExportJob | None:
    """The locked job if this worker's claim still holds (same attempt, still running)."""
    job = ExportJob.objects.select_for_update().filter(pk=job_id).first()
    if job is None or job.status != Status.RUNNING or job.attempts != attempt:
        logger.warning("export %s: claim %s lost; result discarded", job_id, attempt)
        return None
    return job


def renew_export_lease(*, job_id: int, attempt: int, rows_written: int) -> bool | None:
    """Extend a running job's lease and record its progress (bookkeeping: no audit row).

    True when renewed; False when the claim is lost (the job finished, failed or was claimed
    again); None when the job cannot be seen (not committed yet), so nothing is known.
    """
    now = timezone.now()
    lease = timedelta(seconds=settings.EXPORTS_LEASE_SECONDS)
    with bookkeeping():
        updated = ExportJob.objects.filter(
            pk=job_id, status=Status.RUNNING, attempts=attempt
        ).update(locked_until=now + lease, rows_written=rows_written, updated_at=now)
    if updated:
        return True
    return False if ExportJob.objects.filter(pk=job_id).exists() else None


def complete_export_run(
    *, actor: Actor, job_id: int, attempt: int, file_name: str, row_count: int
) -> ExportJob | None:
    with bookkeeping(), transaction.atomic():
        job = _fenced(job_id, attempt)
        if job is None:
            return None
        return _change(
            actor=actor,
            job=job,
            action="exports.complete",
            status=Status.COMPLETED,
            file=file_name,
            row_count=row_count,
            rows_written=row_count,
            storage_url=download_path(job),
            completed_at=timezone.now(),
            locked_until=None,
        )


def fail_export_run(*, actor: Actor, job_id: int, attempt: int, error: str) -> ExportJob | None:
    with bookkeeping(), transaction.atomic():
        job = _fenced(job_id, attempt)
        if job is None:
            return None
        return _change(
            actor=actor,
            job=job,
            action="exports.fail",
            status=Status.FAILED,
            error_message=error[:2000],
            locked_until=None,
        )

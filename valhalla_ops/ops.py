"""Admin ops: high-level actions run through `POST /admin/ops/`.

Each app registers its actions in AppConfig.ready():
`registry.ops_actions.register("name", OpsAction(run=..., description=..., mutating=...))`.
An action takes `actor` and `params` as keyword arguments and returns JSON-able data; it
raises `ServiceError` (or DRF's `ValidationError`) for bad params. `params` names a DRF
serializer that types the params (the action then gets the validated data), and
`permission` the permissions a caller needs (by default `run_admin_ops`, the ops-admin's).

While the system is read-only or in maintenance (`lockdown`): actions that change nothing
run, an action registered with `lockdown=ALLOW` runs (the mode switch), one registered with
`lockdown=CONTAIN` runs for holders of the containment permission, and every other one gets
the shield's 503. The view decides, after authentication and parsing (`lockdown_permit`).
"""

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone
from rest_framework import serializers
from rest_framework.exceptions import APIException, PermissionDenied

from valhalla_ops import metrics, registry, writeguard
from valhalla_ops.audit import Actor, describe_actor, keep_refusal, record_change, redact

logger = logging.getLogger(__name__)

ALLOW = "allow"  # runs in every mode (the mode switch)
CONTAIN = "contain"  # incident containment: runs in a lockdown for the containment permission


NON_FIELD = "non_field_errors"
RUN_ADMIN_OPS = "valhalla_ops.run_admin_ops"
VIEW_ADMIN_OPS = "valhalla_ops.view_admin_ops"  # every default group: the read-only actions


@dataclass(frozen=True)
class OpsAction:
    run: Callable[..., Any]
    description: str
    mutating: bool = False
    permission: str | tuple[str, ...] = RUN_ADMIN_OPS
    params: type[serializers.Serializer] | None = None
    lockdown: str = ""  # "" (runs in a lockdown only if not mutating), ALLOW or CONTAIN

    @property
    def permissions(self) -> tuple[str, ...]:
        return (self.permission,) if isinstance(self.permission, str) else self.permission

    def allows(self, actor: Actor) -> bool:
        """Whether the actor may run this action (the system, e.g. a command, may run all)."""
        has_perms = getattr(actor, "has_perms", None)
        return has_perms is not None and bool(has_perms(self.permissions))

    def validate(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.params is None:
            return params
        serializer = self.params(data=params)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)


def lockdown_permit(request: Any, action: str) -> AbstractContextManager[None]:
    """Where `action` may run in the mode the shield judged `request` under.

    Normal mode: anywhere. In a lockdown: the write permit the action needs; raises
    `WriteBlocked` (the shield's 503) when it may not run now.
    """
    if writeguard.lockdown_mode(request) is None:
        return nullcontext()
    entry = registry.ops_actions.get(action)
    if entry is None:
        return nullcontext()  # run_action reports the unknown action; nothing runs
    if entry.lockdown == CONTAIN:
        return writeguard.contain(request)
    if entry.lockdown == ALLOW or not entry.mutating:
        return writeguard.exempt(request)
    raise writeguard.refuse(request)


class UnknownAction(LookupError):
    pass


def refusal(action: str, entry: OpsAction) -> PermissionDenied:
    needed = ", ".join(entry.permissions)
    return PermissionDenied(f"The action {action!r} needs the permission {needed}.")


def run_action(*, actor: Actor, action: str, params: dict[str, Any]) -> Any:
    """Run one registered action and announce it (event + metric), whatever its outcome.

    A mutating action's service writes its own audit row; a read-only action gets one here.
    The `admin_ops.executed` event commits with the action's changes; a refused action is
    announced as `admin_ops.refused` on its own, after the action's transaction rolled back.
    """
    entry = registry.ops_actions.get(action)
    if entry is None:
        metrics.admin_ops.labels("unknown", "refused").inc()
        raise UnknownAction(action)
    try:
        if not entry.allows(actor):
            raise refusal(action, entry)
        with transaction.atomic():
            data = entry.run(actor=actor, params=entry.validate(params))
            if not entry.mutating:
                record_change(
                    actor=actor,
                    action=f"admin_ops.{action}",
                    message=f"Admin ops action {action}",
                    context_data={"params": params},
                )
            _announce(actor, action, entry, params, outcome="ok")
    except APIException as error:
        metrics.admin_ops.labels(action, "refused").inc()
        with transaction.atomic():
            keep_refusal(error)  # the action's rollback took the first one
            _announce(
                actor, action, entry, params, outcome="refused", error=error_text(error.detail)
            )
        raise
    except Exception:
        metrics.admin_ops.labels(action, "error").inc()
        raise
    metrics.admin_ops.labels(action, "ok").inc()
    return data


def error_text(detail: object) -> str:
    """A DRF error detail (string, list or dict of them) as one line."""
    if isinstance(detail, dict):
        return "; ".join(
            error_text(value) if field == NON_FIELD else f"{field}: {error_text(value)}"
            for field, value in detail.items()
        )
    if isinstance(detail, list):
        return " ".join(error_text(item) for item in detail)
    return str(detail)


def _announce(
    actor: Actor,
    action: str,
    entry: OpsAction,
    params: dict[str, Any],
    *,
    outcome: str,
    error: str | None = None,
) -> None:
    """Queue the admin-ops event for subscribed channels (nothing if notify is not installed)."""
    emit = registry.event_emitter.get("default")
    if emit is None:
        return
    _type, _id, name = describe_actor(actor)
    topic = "admin_ops.executed" if outcome == "ok" else "admin_ops.refused"
    verb = "ran" if outcome == "ok" else "was refused"
    emit(
        topic=topic,
        payload={
            "action": action,
            "outcome": outcome,
            "mutating": entry.mutating,
            "actor": name,
            "params": redact(params),
            "error": error,
        },
        subject=f"Admin ops: {action} {verb} ({name})",
    )


def list_actions(*, actor: Actor, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The actions this caller may run, with the params each takes."""
    return [
        {
            "action": name,
            "description": entry.description,
            "mutating": entry.mutating,
            "permissions": list(entry.permissions),
            "params": describe_params(entry),
        }
        for name, entry in registry.ops_actions.items()
        if entry.allows(actor)
    ]


def describe_params(entry: OpsAction) -> dict[str, dict[str, Any]]:
    """Each typed param: its type, whether it is required, and its help text."""
    if entry.params is None:
        return {}
    described = {}
    for name, field in entry.params().fields.items():
        row: dict[str, Any] = {"type": type(field).__name__.removesuffix("Field").lower()}
        row["required"] = field.required
        if field.help_text:
            row["help"] = str(field.help_text)
        if isinstance(field, serializers.ChoiceField):
            row["choices"] = list(field.choices)
        described[name] = row
    return described


def security_snapshot(*, actor: Actor, params: dict[str, Any]) -> dict[str, Any]:
    """One view of everything security-relevant, one section per app."""
    sections: dict[str, Any] = {"generated_at": timezone.now().isoformat()}
    for name, section in registry.snapshot_sections.items():
        try:
            sections[name] = section()
        except Exception:  # one broken section must not hide the others
            logger.exception("security snapshot section %s failed", name)
            sections[name] = {"error": "section unavailable"}
    return sections


def register_builtin_actions() -> None:
    registry.ops_actions.register(
        "list_actions",
        OpsAction(
            list_actions,
            "List the actions you may run, with their params.",
            permission=VIEW_ADMIN_OPS,
        ),
    )
    registry.ops_actions.register(
        "security_snapshot", OpsAction(security_snapshot, "Security overview from every app.")
    )
    from valhalla_ops.dashboard import dashboard_action  # the dashboard reads the audit models

    registry.ops_actions.register(
        "dashboard",
        OpsAction(
            dashboard_action,
            'The admin index\'s "At a glance" boxes as JSON, one entry per section.',
            permission=VIEW_ADMIN_OPS,
        ),
    )

"""Write the audit row that goes with every state change."""

import logging
import re
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.db import models, transaction

from valhalla_ops import context, writeguard
from valhalla_ops.exceptions import Forbidden
from valhalla_ops.models import SystemLog
from valhalla_ops.principals import ServicePrincipal, SystemActor

logger = logging.getLogger(__name__)

SECRET_FIELD = re.compile(r"(api_?key|key_hash|password|secret|token|pepper)", re.IGNORECASE)
REDACTED = "[redacted]"

Actor = Any  # a User, a ServicePrincipal, a SystemActor or None


def redact(value: Any) -> Any:
    """Replace the values of secret-looking keys, recursively."""
    if isinstance(value, dict):
        return {k: REDACTED if SECRET_FIELD.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def describe_actor(actor: Actor) -> tuple[str, str, str]:
    """(actor_type, actor_id, name) for a user, an API client, or the system."""
    if isinstance(actor, ServicePrincipal):
        return SystemLog.ActorType.CLIENT, str(actor.client_id), actor.username
    if isinstance(actor, SystemActor) or actor is None or isinstance(actor, AnonymousUser):
        name = actor.username if isinstance(actor, SystemActor) else "system"
        return SystemLog.ActorType.SYSTEM, "", name
    return SystemLog.ActorType.USER, str(actor.pk), actor.get_username()


def record_change(
    *,
    actor: Actor,
    action: str,
    target: models.Model | None = None,
    message: str = "",
    before: dict | None = None,
    after: dict | None = None,
    context_data: dict | None = None,
    level: str = SystemLog.Level.INFO,
) -> SystemLog:
    """Write one SystemLog row inside the caller's transaction."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("record_change() must run inside the transaction of the change")
    actor_type, actor_id, actor_name = describe_actor(actor)
    request = context.current()
    permit = writeguard.current_permit()
    if permit is not None and permit.kind == writeguard.CONTAINMENT:
        context_data = {**(context_data or {}), "during_mode": permit.mode}
    row = SystemLog.objects.create(
        level=level,
        category=action.split(".", 1)[0],
        action=action,
        message=(message or action)[:500],
        context=redact(context_data or {}),
        before=redact(before) if before is not None else None,
        after=redact(after) if after is not None else None,
        actor_type=actor_type,
        actor_id=actor_id,
        actor=actor_name[:150],
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target=str(target)[:255] if target is not None else "",
        request_id=request.request_id,
        client_ip=request.client_ip,
    )
    logger.info("audit %s by %s on %s", action, actor_name, row.target or "-")
    return row


def refuse(*, actor: Actor, action: str, target: models.Model | None, message: str) -> Forbidden:
    """Record a refused change (`<action>.refused`, level warning) and return the 403 to raise.

    Call it before the change's transaction opens, so the refusal's row is kept.
    """
    audit = {
        "actor": actor,
        "action": f"{action}.refused",
        "target": target,
        "message": message,
        "level": SystemLog.Level.WARNING,
    }
    with transaction.atomic():
        record_change(**audit)
    return Forbidden(message, audit=audit)


def keep_refusal(error: BaseException) -> None:
    """Write a refusal's audit row again when the transaction that held it rolled back."""
    audit = getattr(error, "audit", None)
    if audit:
        with transaction.atomic():
            record_change(**audit)

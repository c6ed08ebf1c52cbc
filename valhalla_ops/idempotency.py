"""`Idempotency-Key` for POSTs that create something: a retried request never acts twice.

`@idempotent` on a DRF view method: with the header, the request runs in one transaction
that also claims the key for its caller. The same key with the same request (method, path,
query, body) answers the first response again (status and body) without calling the view;
with a different request it is a 422. Keys are per caller and kept `TTL`; the worker purges
expired ones. A concurrent duplicate waits on the database's unique index until the first
commits, then gets the replay: the action runs once. A 5xx answer is not kept, so a retry
acts again (nothing was done). Without the header, nothing changes.
"""

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response

from valhalla_ops.audit import describe_actor
from valhalla_ops.models import IdempotencyKey
from valhalla_ops.sealing import seal, unseal
from valhalla_ops.writeguard import bookkeeping

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255
PURGE_BATCH = 1000

PARAMETER = OpenApiParameter(
    HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="Any unique string (a UUID): a retry with the same key and body gets the "
    "first response again without acting twice; the same key with another body is a 422. "
    "Kept 24 hours, per caller.",
)

View = Callable[..., Response]


class KeyReused(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "idempotency_key_reused"
    default_detail = (
        "This Idempotency-Key was already used with a different request; use a new key."
    )


def idempotent(view: View) -> View:
    """Decorate a DRF view method (`create`, an `@action`, `post`) that creates something."""

    @wraps(view)
    def wrapper(self: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER)
        if key is None:
            return view(self, request, *args, **kwargs)
        check_key(key)
        caller, print_ = caller_of(request), fingerprint(request)
        with transaction.atomic():
            row = claim(caller=caller, key=key, fingerprint=print_, request=request)
            if row.status_code:  # answered before
                return replay(row, print_)
            response = run(self, view, request, *args, **kwargs)
            keep(row, response)
        return response

    return extend_schema(parameters=[PARAMETER])(wrapper)


def check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise exceptions.ValidationError(
            {HEADER: [f"Send 1 to {MAX_KEY_LENGTH} printable characters (a UUID is best)."]}
        )


def caller_of(request: Request) -> str:
    actor_type, actor_id, _name = describe_actor(request.user)
    return f"{actor_type}:{actor_id}"


def fingerprint(request: Request) -> str:
    """A hash of what makes two requests the same: method, path (either slash), query, body."""
    query = sorted(request.query_params.lists())
    body = request.data
    text = json.dumps(
        [request.method, request.path.rstrip("/"), query, body],
        sort_keys=True,
        cls=DjangoJSONEncoder,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def claim(*, caller: str, key: str, fingerprint: str, request: Request) -> IdempotencyKey:
    """Our new row (status 0, uncommitted), or the earlier request's row under this key.

    A concurrent request holding the key makes the insert wait until it commits (PostgreSQL's
    unique index; SQLite's IMMEDIATE transactions serialise writers before that).
    """
    now = timezone.now()
    with bookkeeping():
        IdempotencyKey.objects.filter(caller=caller, key=key).expired(now).delete()
        try:
            with transaction.atomic():
                return IdempotencyKey.objects.create(
                    caller=caller,
                    key=key,
                    fingerprint=fingerprint,
                    method=request.method or "",
                    path=request.path[:255],
                    status_code=0,
                    expires_at=now + TTL,
                )
        except IntegrityError:
            return IdempotencyKey.objects.get(caller=caller, key=key)


def run(self: Any, view: View, request: Request, *args: Any, **kwargs: Any) -> Response:
    """The view's response, with a refusal (an APIException) rendered as DRF would."""
    try:
        return view(self, request, *args, **kwargs)
    except Exception as error:
        return self.handle_exception(error)  # re-raises what is not an API error: no row kept


def keep(row: IdempotencyKey, response: Response) -> None:
    with bookkeeping():
        if response.status_code >= 500:
            row.delete()  # nothing was done: a retry may try again
            return
        row.status_code = response.status_code
        row.body = seal(json.dumps(response.data, cls=DjangoJSONEncoder))
        row.save(update_fields=["status_code", "body"])


def replay(row: IdempotencyKey, fingerprint: str) -> Response:
    if row.fingerprint != fingerprint:
        raise KeyReused()
    data = json.loads(unseal(row.body)) if row.body else None
    return Response(data, status=row.status_code, headers={REPLAYED_HEADER: "true"})


def purge_expired_keys() -> int:
    """The worker step: delete a batch of expired keys; returns how many went."""
    with bookkeeping():
        pks = list(
            IdempotencyKey.objects.expired(timezone.now()).values_list("pk", flat=True)[
                :PURGE_BATCH
            ]
        )
        if not pks:
            return 0
        deleted, _per_model = IdempotencyKey.objects.filter(pk__in=pks).delete()
    return deleted

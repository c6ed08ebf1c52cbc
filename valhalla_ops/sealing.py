"""Secrets the service must read back (webhook signing keys), encrypted at rest.

Values are sealed with Fernet (AES-128-CBC + HMAC-SHA256) under a key derived from
`SECRET_KEY` with HKDF. Keys derived from `SECRET_KEY_FALLBACKS` still open old values, so
`SECRET_KEY` can be rotated the way Django rotates it for sessions and signing; then
`manage.py reseal_secrets` seals every value under the new key and the fallback can go.
"""

import base64
import logging
from functools import lru_cache
from typing import Any, cast

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import models

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "gAAAAA"  # every Fernet token starts with its version byte and a timestamp
_INFO = b"valhalla-ops sealed fields v1"


class SecretUnreadable(Exception):
    """No configured key opens a sealed value (SECRET_KEY changed without a fallback)."""


def _derive(secret_key: str) -> Fernet:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO)
    return Fernet(base64.urlsafe_b64encode(hkdf.derive(secret_key.encode())))


@lru_cache(maxsize=8)
def _box(secret_key: str, fallbacks: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([_derive(key) for key in (secret_key, *fallbacks)])


def box() -> MultiFernet:
    """The keys in force: `SECRET_KEY` seals, it and its fallbacks open."""
    return _box(settings.SECRET_KEY, tuple(settings.SECRET_KEY_FALLBACKS))


def seal(text: str) -> str:
    return box().encrypt(text.encode()).decode("ascii")


def unseal(token: str) -> str:
    try:
        return box().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError) as error:
        raise SecretUnreadable(
            "a sealed secret cannot be opened with SECRET_KEY or SECRET_KEY_FALLBACKS"
        ) from error


def reseal(token: str) -> str:
    """The same value sealed under the current `SECRET_KEY`."""
    try:
        return box().rotate(token.encode("ascii")).decode("ascii")
    except InvalidToken as error:
        raise SecretUnreadable("a sealed secret cannot be opened") from error


def is_sealed(value: str) -> bool:
    return value.startswith(TOKEN_PREFIX)


class UnreadableSecret(str):
    """What a sealed column reads as when no key opens it: empty, and keeps the token.

    Saving the row writes the token back unchanged, so restoring the old key as a fallback
    recovers the secret; nothing is lost by an edit made meanwhile.
    """

    token: str

    def __new__(cls, token: str) -> "UnreadableSecret":
        value = super().__new__(cls, "")
        value.token = token
        return value


class SealedTextField(models.TextField):
    """A text column holding a Fernet token; Python code only ever sees the plaintext.

    Dumps (`dumpdata`) carry the token, and loading one opens it, so a fixture never holds
    the plaintext. The column cannot be searched or filtered by value.
    """

    def open(self, token: str) -> str:
        """The plaintext of a token, or an UnreadableSecret that keeps it."""
        try:
            return unseal(token)
        except SecretUnreadable:
            logger.error("%s of a row cannot be unsealed: check SECRET_KEY_FALLBACKS", self.name)
            return UnreadableSecret(token)

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        return self.open(value) if value else value

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and is_sealed(value) and not isinstance(value, UnreadableSecret):
            return self.open(value)
        return super().to_python(value)

    def get_prep_value(self, value: Any) -> Any:
        if isinstance(value, UnreadableSecret):
            return value.token
        value = super().get_prep_value(value)
        return seal(value) if value else value

    def value_to_string(self, obj: models.Model) -> str:
        # A text column's value: the plaintext, an UnreadableSecret, or None.
        value = cast("str | None", self.value_from_object(obj))
        if isinstance(value, UnreadableSecret):
            return value.token
        return seal(value) if value else ""


def sealed_columns() -> list[tuple[type[models.Model], SealedTextField]]:
    """Every sealed column of every installed model."""
    from django.apps import apps

    return [
        (model, field)
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if isinstance(field, SealedTextField)
    ]


def reseal_column(model: type[models.Model], field: SealedTextField) -> tuple[int, list[Any]]:
    """Seal every value of one column under the current key: (resealed, unreadable pks).

    Raw SQL, because the model would hand back plaintext. Each row is written only if it
    still holds the value read (a secret rotated meanwhile is left alone).
    """
    from django.db import connections, router, transaction

    alias = router.db_for_write(model)
    connection = connections[alias]
    quote = connection.ops.quote_name
    # A text field and a primary key always have a column (only some relations have none).
    assert field.column is not None
    assert model._meta.pk.column is not None
    table, column, pk = (
        quote(model._meta.db_table),
        quote(field.column),
        quote(model._meta.pk.column),
    )
    resealed, unreadable = 0, []
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        cursor.execute(f"SELECT {pk}, {column} FROM {table} ORDER BY {pk}")
        for row_pk, value in cursor.fetchall():
            if not value:
                continue
            try:
                new = reseal(value) if is_sealed(value) else seal(value)
            except SecretUnreadable:
                unreadable.append(row_pk)
                continue
            cursor.execute(
                f"UPDATE {table} SET {column} = %s WHERE {pk} = %s AND {column} = %s",
                [new, row_pk, value],
            )
            resealed += cursor.rowcount
    return resealed, unreadable

"""The API reads JSON only, and refuses hostile JSON with a 4xx before any view sees it."""

import codecs
import json
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from rest_framework import exceptions, parsers

from valhalla_ops.exceptions import PayloadTooLarge
from valhalla_ops.limits import MAX_JSON_DEPTH


class StrictJSONParser(parsers.JSONParser):
    """JSON with a size cap, a depth cap, valid Unicode and no NUL characters."""

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        # Django refuses a declared Content-Length over the limit when DRF reads the body
        # (the exception handler makes that a 413); a chunked body declares none.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise PayloadTooLarge()
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.decode(raw, encoding)
        except (UnicodeDecodeError, LookupError) as error:
            raise exceptions.ParseError(f"The body is not valid {encoding}: {error}") from None
        try:
            data = json.loads(text, parse_constant=_refuse_constant)
        except RecursionError:
            raise exceptions.ParseError(_too_deep()) from None
        except ValueError as error:
            raise exceptions.ParseError(f"JSON parse error - {error}") from None
        problem = hostile(data)
        if problem:
            raise exceptions.ParseError(problem)
        return data


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _too_deep() -> str:
    return f"JSON nested deeper than {MAX_JSON_DEPTH} levels."


def hostile(data: Any) -> dict[str, list[str]] | None:
    """Why a parsed JSON value is refused (too deep, invalid Unicode, NUL), by top-level field.

    None when it is fine. A problem inside field `x` of an object is reported under `x`; one
    in a key of the object itself, or in a body that is not an object, under non_field_errors.
    """
    top = "non_field_errors"
    stack: list[tuple[Any, int, str]] = [(data, 1, top)]
    while stack:
        value, depth, field = stack.pop()
        problem = None
        if isinstance(value, str):
            problem = bad_text(value)
        elif isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                problem = _too_deep()
            else:
                stack.extend(_children(value, depth, field, top_level=value is data))
        if problem:
            return {field: [problem]}
    return None


def _children(
    value: dict | list, depth: int, field: str, *, top_level: bool
) -> list[tuple[Any, int, str]]:
    if isinstance(value, list):
        return [(item, depth + 1, field) for item in value]
    children = []
    for key, item in value.items():
        children.append((key, depth, field))
        name = key if top_level and isinstance(key, str) and not bad_text(key) else field
        children.append((item, depth + 1, name))
    return children


def bad_text(value: str) -> str | None:
    """Why a string cannot be stored (a NUL character, a lone surrogate), or None."""
    if "\x00" in value:
        return "Null characters are not allowed."
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "Invalid Unicode: a lone surrogate is not a character."
    return None

"""Exports at the database's pace: the job type's query, formatted by the database itself.

The job type's queryset keeps its filters and its order; only its columns are replaced by SQL
expressions that format each value as the Python writers (`exports.writers`) do: formulas
quoted, booleans as true/false, times in ISO 8601 UTC, JSON as JSON. PostgreSQL then streams
the rows with `COPY (...) TO STDOUT` through psycopg's `cursor.copy()`; SQLite hands them to a
plain cursor loop. A column whose type has no SQL form here leaves the job to the Python
writers.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import F, Func

from exports.writers import FORMULA_PREFIXES

Expression = Callable[[str], str]  # quoted column -> SQL expression


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def formula_safe(vendor: str, text: str) -> str:
    """A text expression with a leading ' when a spreadsheet would read it as a formula.

    The first character's code (PostgreSQL ascii(), SQLite unicode()) is compared without a
    substring; every formula prefix is below 65, so the common case (a letter) costs one
    comparison.
    """
    first = f"ascii({text})" if vendor == "postgresql" else f"unicode({text})"
    codes = ", ".join(str(ord(char)) for char in FORMULA_PREFIXES)
    formula = f"{first} < 65 AND {first} IN ({codes})"
    plain = f"NULLIF({text}, '')" if vendor == "postgresql" else text
    return f"CASE WHEN {formula} THEN '''' || {text} ELSE {plain} END"


# --- PostgreSQL ----------------------------------------------------------------------------

PG_ISO = "to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS{fraction}')"
PG_WHOLE_SECOND = "date_trunc('second', {c}) = {c}"


def pg_iso(c: str, fraction: str) -> str:
    """The UTC time in ISO 8601, with `fraction` (a to_char pattern) unless it is 0."""
    whole = PG_ISO.format(c=c, fraction="")
    part = PG_ISO.format(c=c, fraction=fraction)
    return f"CASE WHEN {PG_WHOLE_SECOND.format(c=c)} THEN {whole} ELSE {part} END"


def pg_csv_datetime(c: str) -> str:
    """datetime.isoformat() of the UTC time: microseconds only when there are some."""
    return f"{pg_iso(c, '.US')} || '+00:00'"


def pg_json_datetime(c: str) -> str:
    """DjangoJSONEncoder's form: milliseconds only when there are microseconds, and Z."""
    return f"""'"' || {pg_iso(c, ".MS")} || 'Z"'"""


def pg_csv_json(c: str) -> str:
    text = f"({c} #>> '{{}}')"
    return (
        f"CASE jsonb_typeof({c}) WHEN 'string' THEN {formula_safe('postgresql', text)} "
        f"WHEN 'null' THEN NULL ELSE {c}::text END"
    )


PG_CSV: dict[str, Expression] = {
    "text": lambda c: formula_safe("postgresql", f"{c}::text"),
    "inet": lambda c: formula_safe("postgresql", f"host({c})"),
    "plain": lambda c: c,
    "bool": lambda c: f"CASE WHEN {c} THEN 'true' WHEN NOT {c} THEN 'false' END",
    "datetime": pg_csv_datetime,
    "date": lambda c: f"to_char({c}, 'YYYY-MM-DD')",
    "json": pg_csv_json,
    "uuid": lambda c: f"{c}::text",
}
PG_JSON: dict[str, Expression] = {
    "text": lambda c: f"to_json({c}::text)::text",
    "inet": lambda c: f"to_json(host({c}))::text",
    "plain": lambda c: f"to_json({c})::text",
    "bool": lambda c: f"CASE WHEN {c} THEN 'true' ELSE 'false' END",
    "datetime": pg_json_datetime,
    "date": lambda c: f"'\"' || to_char({c}, 'YYYY-MM-DD') || '\"'",
    "json": lambda c: f"{c}::text",
    "uuid": lambda c: f"to_json({c}::text)::text",
}

# --- SQLite (Django stores times as 'YYYY-MM-DD HH:MM:SS[.ffffff]' in UTC, JSON as text) ---


def sqlite_csv_json(c: str) -> str:
    """Django stores JSON as json.dumps() text: only a string (a leading quote) needs
    decoding; null is an empty cell; objects, arrays, numbers and booleans stay as stored."""
    text = f"json_extract({c}, '$')"
    return (
        f"CASE unicode({c}) WHEN 34 THEN {formula_safe('sqlite', text)} "
        f"WHEN 110 THEN NULL ELSE {c} END"
    )


def sqlite_json_datetime(c: str) -> str:
    fraction = f"CASE WHEN length({c}) > 19 THEN substr({c}, 20, 4) ELSE '' END"
    return f"'\"' || substr({c}, 1, 10) || 'T' || substr({c}, 12, 8) || {fraction} || 'Z\"'"


SQLITE_CSV: dict[str, Expression] = {
    "text": lambda c: formula_safe("sqlite", c),
    "inet": lambda c: formula_safe("sqlite", c),
    "plain": lambda c: c,
    "bool": lambda c: f"CASE {c} WHEN 1 THEN 'true' WHEN 0 THEN 'false' END",
    "datetime": lambda c: f"replace({c}, ' ', 'T') || '+00:00'",
    "date": lambda c: c,
    "json": sqlite_csv_json,
}
SQLITE_JSON: dict[str, Expression] = {
    "text": lambda c: f"json_quote({c})",
    "inet": lambda c: f"json_quote({c})",
    "plain": lambda c: f"json_quote({c})",
    "bool": lambda c: f"CASE {c} WHEN 1 THEN 'true' ELSE 'false' END",
    "datetime": sqlite_json_datetime,
    "date": lambda c: f"'\"' || {c} || '\"'",
    "json": lambda c: c,
}

KINDS: list[tuple[type[models.Field], str]] = [
    (models.BooleanField, "bool"),
    (models.DateTimeField, "datetime"),
    (models.DateField, "date"),
    (models.JSONField, "json"),
    (models.UUIDField, "uuid"),
    (models.GenericIPAddressField, "inet"),
    (models.CharField, "text"),
    (models.TextField, "text"),
    (models.DecimalField, "decimal"),
    (models.IntegerField, "plain"),
    (models.FloatField, "plain"),
    (models.AutoField, "plain"),
    (models.BigAutoField, "plain"),
]


def kind_of(field: models.Field) -> str | None:
    target = field.target_field if isinstance(field, models.ForeignKey) else field
    for klass, kind in KINDS:
        if isinstance(target, klass):
            return kind
    return None


@dataclass(frozen=True)
class Plan:
    """The export's SELECT: one formatted column per field (CSV), or one JSON line (jsonl)."""

    sql: str
    params: tuple[Any, ...]


def _kinds(rows: models.QuerySet, fields: list[str]) -> list[str] | None:
    """The field kinds, in order; None if a field is not a plain column of the model."""
    kinds = []
    for name in fields:
        try:
            field = rows.model._meta.get_field(name)
        except FieldDoesNotExist:
            return None
        kind = kind_of(field) if getattr(field, "concrete", False) else None
        if kind is None:
            return None
        kinds.append(kind)
    return kinds


def _format(name: str, template: str) -> Func:
    """The column `name` put through an SQL template (Django fills in the column reference)."""
    return Func(F(name), template=template, output_field=models.TextField())


def _json_line(fields: list[str], templates: list[str]) -> Func:
    """'{"name": <value>, ...}' with the keys in the job type's order, as json.dumps writes it."""
    parts = []
    for i, (name, template) in enumerate(zip(fields, templates, strict=True)):
        key = _sql_string(("{" if i == 0 else ", ") + json.dumps(name, ensure_ascii=False) + ": ")
        parts.append(_format(name, f"{key} || COALESCE({template}, 'null')"))
    return Func(*parts, template="%(expressions)s || '}'", arg_joiner=" || ")


TABLES: dict[tuple[str, str], dict[str, Expression]] = {
    ("postgresql", "csv"): PG_CSV,
    ("postgresql", "jsonl"): PG_JSON,
    ("sqlite", "csv"): SQLITE_CSV,
    ("sqlite", "jsonl"): SQLITE_JSON,
}


def plan(rows: Any, fields: list[str], file_format: str, vendor: str) -> Plan | None:
    """The formatting SELECT for this export, or None when the Python writers must do it.

    The job type's queryset keeps its filters and ORDER BY: only its columns change.
    """
    table = TABLES.get((vendor, file_format))
    if table is None or not isinstance(rows, models.QuerySet) or not fields:
        return None
    kinds = _kinds(rows, fields)
    if kinds is None or any(kind not in table for kind in kinds):
        return None
    templates = [table[kind]("%(expressions)s") for kind in kinds]
    if file_format == "csv":
        columns = {
            f"export_col_{i}": _format(n, t)
            for i, (n, t) in enumerate(zip(fields, templates, strict=True))
        }
    else:
        columns = {"export_line": _json_line(fields, templates)}
    sql, params = rows.values(**columns).query.get_compiler(rows.db).as_sql()
    return Plan(sql=sql, params=tuple(params))

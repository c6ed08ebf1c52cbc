"""Export file formats: CSV and JSON Lines, written row by row (constant memory)."""

import csv
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any, TextIO

from django.core.serializers.json import DjangoJSONEncoder

# A cell starting with one of these is a formula to a spreadsheet: quote it (OWASP CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if isinstance(value, str) and text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def write_csv(out: TextIO, fields: list[str], rows: Iterable[Mapping[str, Any]]) -> int:
    writer = csv.writer(out)
    writer.writerow(fields)
    count = 0
    for row in rows:
        writer.writerow([csv_cell(row.get(name)) for name in fields])
        count += 1
    return count


def write_jsonl(out: TextIO, fields: list[str], rows: Iterable[Mapping[str, Any]]) -> int:
    count = 0
    for row in rows:
        record = {name: row.get(name) for name in fields}
        out.write(json.dumps(record, cls=DjangoJSONEncoder, ensure_ascii=False))
        out.write("\n")
        count += 1
    return count


WRITERS: dict[str, Callable[[TextIO, list[str], Iterable[Mapping[str, Any]]], int]] = {
    "csv": write_csv,
    "jsonl": write_jsonl,
}

"""The database-formatted exports (COPY on PostgreSQL, a cursor loop on SQLite) write what the
Python writers write: same columns in the same order, same filters, same formula escaping."""

import csv
import io
import json
from datetime import UTC, date, datetime

import pytest
import time_machine
from django.core.files.storage import default_storage
from django.db import connection
from django.db.models import JSONField, QuerySet, Value

from clients.models import ApiClient
from exports import bulk, jobtypes, runner, writers
from exports.models import ExportJob
from valhalla_ops import registry
from valhalla_ops.models import SystemLog
from valhalla_ops.registry import ExportJobType

pytestmark = pytest.mark.django_db

TRICKY_TEXT = [
    '=HYPERLINK("http://evil")',
    "+1",
    "-5",
    "@SUM(A1)",
    "\tTab first",
    "\rCR first",
    "plain, with comma",
    'say "hi"',
    "two\nlines",
    "",
    "naïve ünïcode ☃",
    "back\\slash",
    "'already quoted",
]
JSON_VALUES = [
    {"b": 1, "a": [1, 2, {"z": None}], "long key": "x"},
    [],
    "=json string formula",
    "",
    42,
    1.5,
    True,
    None,
    {"é": "ü", "ctl": "\u0001"},
]


def json_value(value: object) -> object:
    """A JSON null is stored as JSON, not as SQL NULL."""
    return Value(None, JSONField()) if value is None else value


def tricky_logs() -> None:
    for i, text in enumerate(TRICKY_TEXT):
        moment = datetime(2024, 1, 2, 3, 4, 5, 0 if i % 2 else 123456, tzinfo=UTC)
        with time_machine.travel(moment, tick=False):
            SystemLog.objects.create(
                category="tricky",
                action=f"tricky.{i}",
                message=text,
                actor=text,
                context=json_value(JSON_VALUES[i % len(JSON_VALUES)]),
                before=None if i % 3 else JSON_VALUES[(i + 1) % len(JSON_VALUES)],
                after={"i": i},
                client_ip=["10.0.0.1", "2001:db8::1", None][i % 3],
            )


def python_output(rows: QuerySet, fields: list[str], file_format: str) -> str:
    out = io.StringIO(newline="")
    writers.WRITERS[file_format](out, fields, rows.iterator())
    return out.getvalue()


def export(make_job, job_type: str, params: dict) -> str:
    job = make_job(job_type=job_type, filter_params=params)
    runner.run_exports()
    job.refresh_from_db()
    assert job.status == ExportJob.Status.COMPLETED, job.error_message
    assert job.file.name is not None
    with default_storage.open(job.file.name, "rb") as handle:
        return handle.read().decode("utf-8")


def parse_json_cell(text: str) -> object:
    return json.loads(text) if text[:1] in ("{", "[") else text


def assert_same_csv(fast: str, slow: str, json_columns: set[str]) -> None:
    fast_rows = list(csv.reader(io.StringIO(fast, newline="")))
    slow_rows = list(csv.reader(io.StringIO(slow, newline="")))
    assert fast_rows[0] == slow_rows[0]  # the header: same columns, same order
    assert len(fast_rows) == len(slow_rows)
    header = fast_rows[0]
    for fast_row, slow_row in zip(fast_rows[1:], slow_rows[1:], strict=True):
        for name, got, want in zip(header, fast_row, slow_row, strict=True):
            if name in json_columns:  # the same JSON value; key order and escapes may differ
                assert parse_json_cell(got) == parse_json_cell(want), name
            else:
                assert got == want, name


def test_audit_csv_matches_the_python_writer(media, make_job):
    tricky_logs()
    params = {"format": "csv", "category": "tricky"}

    fast = export(make_job, "audit_log_export", params)

    slow = python_output(jobtypes.audit_log_rows(params), jobtypes.AUDIT_FIELDS, "csv")
    assert_same_csv(fast, slow, {"context", "before", "after"})
    header = ",".join(jobtypes.AUDIT_FIELDS)
    if connection.vendor == "postgresql":  # COPY's line ends
        assert fast.startswith(header + "\n")
        assert "\r\n" not in fast.replace("\rCR first", "")
        assert ',"",' not in fast  # empty, as the Python writer leaves it
    else:
        assert fast.startswith(header + "\r\n")
    messages = [row["message"] for row in csv.DictReader(io.StringIO(fast, newline=""))]
    assert messages[:6] == [
        '\'=HYPERLINK("http://evil")',
        "'+1",
        "'-5",
        "'@SUM(A1)",
        "'\tTab first",
        "'\rCR first",
    ]


def test_audit_jsonl_matches_the_python_writer(media, make_job):
    tricky_logs()
    params = {"format": "jsonl", "category": "tricky"}

    fast = export(make_job, "audit_log_export", params)

    slow = python_output(jobtypes.audit_log_rows(params), jobtypes.AUDIT_FIELDS, "jsonl")
    fast_records = [json.loads(line) for line in fast.splitlines()]
    slow_records = [json.loads(line) for line in slow.splitlines()]
    assert fast_records == slow_records
    assert all(list(record) == jobtypes.AUDIT_FIELDS for record in fast_records)
    assert fast_records[0]["created_at"] == "2024-01-02T03:04:05.123Z"
    assert fast_records[1]["created_at"] == "2024-01-02T03:04:05Z"


def test_filters_and_order_are_the_job_types(media, make_job):
    tricky_logs()
    with time_machine.travel(datetime(2023, 6, 1, tzinfo=UTC), tick=False):
        SystemLog.objects.create(category="tricky", action="tricky.old", message="old")
    params = {"format": "csv", "category": "tricky", "start_date": "2024-01-01"}

    fast = export(make_job, "audit_log_export", params)

    actions = [row["action"] for row in csv.DictReader(io.StringIO(fast, newline=""))]
    typed = {"category": "tricky", "start_date": date(2024, 1, 1)}
    expected = [row["action"] for row in jobtypes.audit_log_rows(typed)]
    assert actions == expected
    assert "tricky.old" not in actions
    assert len(actions) == len(TRICKY_TEXT)


@pytest.mark.parametrize("file_format", ["csv", "jsonl"])
def test_api_clients_match_the_python_writer(media, make_job, make_api_client, file_format):
    make_api_client(name="=cmd|' /C calc'!A0")
    make_api_client(name="plain")
    ApiClient.objects.filter(name="plain").update(active=False)

    fast = export(make_job, "api_clients_export", {"format": file_format})

    slow = python_output(jobtypes.api_client_rows({}), jobtypes.CLIENT_FIELDS, file_format)
    if file_format == "csv":
        assert_same_csv(fast, slow, set())
        assert "'=cmd|' /C calc'!A0" in fast
        assert ",false," in fast
    else:
        assert [json.loads(line) for line in fast.splitlines()] == [
            json.loads(line) for line in slow.splitlines()
        ]


def test_every_registered_job_type_is_planned_in_sql(db):
    """No registered job type falls back to the Python writers."""
    for name, job_type in registry.export_job_types.items():
        rows = job_type.rows({})
        for file_format in ("csv", "jsonl"):
            assert bulk.plan(rows, job_type.fields, file_format, connection.vendor), name


@pytest.fixture
def computed_type():
    """A job type with a computed column: the planner leaves it to the Python writers."""

    def rows(params):
        from django.db.models import Value

        return (
            SystemLog.objects.annotate(source=Value("audit")).order_by("id").values("id", "source")
        )

    clients_export = registry.export_job_types.get("api_clients_export")
    assert clients_export is not None
    job_type = ExportJobType(
        name="computed_export",
        description="",
        params_serializer=clients_export.params_serializer,
        rows=rows,
        fields=["id", "source"],
    )
    registry.export_job_types.register("computed_export", job_type)
    yield job_type
    registry.export_job_types._entries.pop("computed_export")


def test_a_column_sql_cannot_format_goes_through_the_python_writers(
    media, make_job, computed_type, settings, monkeypatch
):
    settings.EXPORTS_CHUNK_SIZE = 7
    for i in range(20):
        SystemLog.objects.create(category="c", action=f"a{i}", message="m")
    chunk_sizes: list[int | None] = []
    iterator = QuerySet.iterator

    def spy(self, chunk_size=None):
        chunk_sizes.append(chunk_size)
        return iterator(self, chunk_size=chunk_size)

    monkeypatch.setattr(QuerySet, "iterator", spy)

    content = export(make_job, "computed_export", {"format": "csv"})

    rows = list(csv.DictReader(io.StringIO(content, newline="")))
    assert len(rows) == 21  # the 20 rows and the job's own start audit row
    assert {row["source"] for row in rows} == {"audit"}
    assert chunk_sizes == [7]  # streamed in chunks, constant memory

"""Registries the base offers; each app fills its own in AppConfig.ready()."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from django.db import models

if TYPE_CHECKING:
    from valhalla_ops.ops import OpsAction

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries, registered once each, listed in registration order."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        if name in self._entries and self._entries[name] is not entry:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def decorator(self, name: str) -> Callable[[T], T]:
        return lambda entry: self.register(name, entry)

    def get(self, name: str) -> T | None:
        return self._entries.get(name)

    def names(self) -> list[str]:
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class RetentionCategory:
    """Data an app owns and lets the retention purger delete once it is old enough.

    `queryset()` returns every row of the category; `date_field` is compared with the cutoff;
    `protected()` (optional) returns the rows that must never be deleted whatever their age
    (an undelivered notification, a running export).
    """

    name: str
    description: str
    queryset: Callable[[], models.QuerySet]
    date_field: str = "created_at"
    protected: Callable[[], models.QuerySet] | None = None
    default_days: int | None = None


@dataclass(frozen=True)
class ExportJobType:
    """An export an app offers: validated filter params, then rows streamed in chunks.

    `params_serializer` validates `filter_params` (a DRF Serializer class); `rows(params)`
    returns an iterable of dicts (use `.values(...).iterator()` for constant memory);
    `fields` names the columns in order.
    """

    name: str
    description: str
    params_serializer: type
    rows: Callable[[dict[str, Any]], Any]
    fields: list[str] = field(default_factory=list)
    permission: str = ""  # the permission a requester needs to read this data


@dataclass(frozen=True)
class DashboardSection:
    """A box on the admin index: `render()` returns a title and (label, value, level) rows."""

    title: str
    render: Callable[[], list[tuple[str, Any, str]]]
    order: int = 100


@dataclass(frozen=True)
class DashboardChart:
    """A small chart on the admin index: `collect()` returns the last hour, one value a minute,
    oldest first (60 values)."""

    title: str
    collect: Callable[[], list[int]]
    order: int = 100


@dataclass(frozen=True)
class GaugeSource:
    """A gauge read at scrape time: `collect()` returns (label values, value) pairs."""

    description: str
    labels: tuple[str, ...]
    collect: Callable[[], list[tuple[tuple[str, ...], float]]]


# Admin ops actions: name -> callable(actor, params) -> data (see valhalla_ops.ops).
ops_actions: "Registry[OpsAction]" = Registry("admin ops action")
# Sections of the security snapshot: name -> callable() -> dict.
snapshot_sections: Registry[Callable[[], dict[str, Any]]] = Registry("security snapshot section")
# Worker steps: name -> callable() -> int (items handled).
worker_steps: Registry[Callable[[], int]] = Registry("worker step")
# Retention categories: name -> retention.registry.Category.
retention_categories: Registry[RetentionCategory] = Registry("retention category")
# Export job types: name -> exports.registry.JobType.
export_job_types: Registry[ExportJobType] = Registry("export job type")
# Admin index boxes: name -> DashboardSection.
dashboard_sections: Registry[DashboardSection] = Registry("dashboard section")
# Admin index charts of the last hour: name -> DashboardChart.
dashboard_charts: Registry[DashboardChart] = Registry("dashboard chart")
# Prometheus gauges read at scrape time: name (without the valhalla_ prefix) -> GaugeSource.
gauges: Registry[GaugeSource] = Registry("gauge")
# The notify app's emit_event, for events the base itself raises (admin ops executions).
event_emitter: Registry[Callable[..., Any]] = Registry("event emitter")
# Readiness checks: name -> callable() -> None (raises when not ready).
readiness_checks: Registry[Callable[[], object]] = Registry("readiness check")
# Why admin forms are shown disabled now: name -> callable(request) -> explanation, or None
# when writes are allowed (the maintenance app registers the read-only/maintenance mode).
admin_lockdowns: Registry[Callable[[Any], str | None]] = Registry("admin lockdown")

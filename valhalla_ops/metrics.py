"""Prometheus metrics: counters and histograms, plus gauges read from the database at scrape time.

Without `PROMETHEUS_MULTIPROC_DIR` each process counts in memory and serves its own counters.
With it, prometheus-client writes every process's counters to files in that directory (it
chooses when first imported), and a scrape adds up the files of every process.
"""

import logging
import os
from collections.abc import Callable, Iterator

from django.core.exceptions import ImproperlyConfigured
from django.db.models import Count, Q, QuerySet
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from valhalla_ops import registry as registries
from valhalla_ops.registry import GaugeSource

logger = logging.getLogger(__name__)


class RegisteredGauges:
    """Reads every gauge the apps registered (queue depths, the mode) when /metrics is scraped."""

    def collect(self) -> Iterator[Metric]:
        for name, source in registries.gauges.items():
            try:
                samples = source.collect()
            except Exception:  # one broken gauge must not hide the others
                logger.exception("gauge %s failed", name)
                continue
            family = GaugeMetricFamily(f"valhalla_{name}", source.description, labels=source.labels)
            for labels, value in samples:
                family.add_metric(labels, value)
            yield family

    def describe(self) -> list[Metric]:
        return []  # read at scrape time only: nothing is collected at registration


def status_gauge(
    description: str, queryset: Callable[[], QuerySet], statuses: list[str]
) -> GaugeSource:
    """A gauge of rows per `status` (every status listed, zeros included): one query a scrape."""

    def collect() -> list[tuple[tuple[str, ...], float]]:
        counts = dict(queryset().values_list("status").annotate(n=Count("id")).order_by())
        return [((status,), float(counts.get(status, 0))) for status in statuses]

    return GaugeSource(description, ("status",), collect)


def count_gauge(
    description: str,
    label: str,
    queryset: Callable[[], QuerySet],
    filters: Callable[[], dict[str, Q]],
) -> GaugeSource:
    """A gauge of the rows matching each filter (label value -> Q): one aggregate query a scrape.

    `filters` is called at each scrape, so a filter may compare with the current time.
    """

    def collect() -> list[tuple[tuple[str, ...], float]]:
        conditions = filters()
        # Numbered aliases: an alias named like a field would shadow it inside the filters.
        counts = queryset().aggregate(
            **{f"n{index}": Count("id", filter=q) for index, q in enumerate(conditions.values())}
        )
        return [((value,), float(counts[f"n{index}"])) for index, value in enumerate(conditions)]

    return GaugeSource(description, (label,), collect)


def multiprocess_dir() -> str | None:
    """The directory shared by every process, or None in single-process mode."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:  # prometheus-client's own test
        return None
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    if not os.path.isdir(path):  # else the first counter fails with a bare FileNotFoundError
        raise ImproperlyConfigured(
            f"PROMETHEUS_MULTIPROC_DIR={path!r} is not a directory: create it (empty) first."
        )
    return path


MULTIPROCESS_DIR = multiprocess_dir()  # checked before the metrics below create their files

gauges = RegisteredGauges()
registry = CollectorRegistry(auto_describe=True)
registry.register(gauges)


def scrape_registry() -> CollectorRegistry:
    """What /metrics serves: this process's registry, or every process's files plus the gauges."""
    if MULTIPROCESS_DIR is None:
        return registry
    merged = CollectorRegistry()  # per scrape, as prometheus-client's multiprocess docs ask
    MultiProcessCollector(merged, path=MULTIPROCESS_DIR)
    merged.register(gauges)
    return merged


ratelimit_decisions = Counter(
    "valhalla_ratelimit_decisions_total",
    "Rate-limit decisions by outcome.",
    ["outcome"],
    registry=registry,
)
ratelimit_store_errors = Counter(
    "valhalla_ratelimit_store_errors_total",
    "Rate-limit checks that could not reach the counter store.",
    registry=registry,
)
shield_blocked = Counter(
    "valhalla_shield_blocked_total",
    "Writes refused by the read-only shield, by mode.",
    ["mode"],
    registry=registry,
)
api_key_failures = Counter(
    "valhalla_api_key_failures_total",
    "Requests with an API key that was refused.",
    registry=registry,
)
worker_items = Counter(
    "valhalla_worker_items_total",
    "Items handled by worker steps.",
    ["step"],
    registry=registry,
)
worker_step_seconds = Histogram(
    "valhalla_worker_step_seconds",
    "Duration of one worker step.",
    ["step"],
    registry=registry,
)
http_responses = Counter(
    "valhalla_http_responses_total",
    "HTTP responses, by method, status class and view (the resolved URL name).",
    ["method", "status", "view"],
    registry=registry,
)
outage_responses = Counter(
    "valhalla_outage_responses_total",
    "Requests answered 503 because the database or Redis could not be reached.",
    ["part"],
    registry=registry,
)
admin_ops = Counter(
    "valhalla_admin_ops_total",
    "Admin ops actions run, by action and outcome.",
    ["action", "outcome"],
    registry=registry,
)

"""Excess reports: one snapshot, one audit row and one event per rule and window, whatever the
number of counters over the limit."""

import logging
import time

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ratelimits import ruleset, services, store
from ratelimits.limiter import check
from ratelimits.models import RateLimitRule, RateLimitSnapshot
from ratelimits.ruleset import Identity, RuleSet
from ratelimits.store import EXCESS_TOP_KEPT, LocalStore, get_store
from ratelimits.tests.helpers import get
from valhalla_ops.models import SystemLog

pytestmark = pytest.mark.django_db

ADDRESSES = [f"198.18.{n // 256}.{n % 256}" for n in range(1000)]


def test_1000_addresses_over_one_rule_write_one_snapshot_audit_row_and_event(
    api_client, make_rule, subscribe, counter_store, settings, monkeypatch
):
    settings.RATELIMIT_RULES_CACHE_SECONDS = 3600  # no reload in the middle of the flood
    monkeypatch.setattr(services, "LOCAL_REPORT_SECONDS", 3600)
    received = subscribe("ratelimit.exceeded")
    make_rule(scope="ip", key="*", max_requests=1)
    get(api_client, ip="192.0.2.250")  # rules loaded before the flood
    heaviest = ADDRESSES[7]

    with CaptureQueriesContext(connection) as flood:
        codes = [get(api_client, ip=ip).status_code for ip in ADDRESSES for _ in range(2)]
        codes += [get(api_client, ip=heaviest).status_code for _ in range(3)]
    for _ in range(3):  # the worker's passes, or later refused requests
        services.report_exceeded()

    writes = [q["sql"] for q in flood.captured_queries if q["sql"].startswith(("INSERT", "UPDATE"))]
    # Local memory reports on the request path (here the first refusal only); Redis never does.
    assert len(writes) == (3 if counter_store == "local" else 0)  # snapshot, audit, outbox
    assert codes.count(429) == 1000 + 3
    report = RateLimitSnapshot.objects.get()
    assert report.keys_over == 1000
    assert report.current_count == 5
    assert report.top_offenders[0] == {"value": heaviest, "count": 5}
    assert len(report.top_offenders) == services.TOP_OFFENDERS
    assert {o["count"] for o in report.top_offenders[1:]} == {2}
    assert SystemLog.objects.filter(action="ratelimits.exceeded").count() == 1
    assert len(received()) == 1
    assert received()[0].payload["snapshot_id"] == report.pk


def test_the_excess_kept_in_redis_is_bounded_and_expires(make_rule, use_redis):
    rule = make_rule(scope="ip", key="*", max_requests=1, window_seconds=60)
    rules = RuleSet.build([rule])
    rule_prefix = rules.rules[0].counter_prefix
    now = time.time()

    for ip in ADDRESSES:
        check(rules, Identity(ip=ip), now=now)
        check(rules, Identity(ip=ip), now=now)

    (excess,) = get_store().excess(top=1000)
    assert excess.keys_over == 1000
    assert EXCESS_TOP_KEPT <= len(excess.top) <= 2 * EXCESS_TOP_KEPT
    index = get_store().excess_index  # type: ignore[attr-defined]
    ours = [*use_redis.scan_iter(rule_prefix + "*"), *use_redis.scan_iter(index + "*")]
    assert len(ours) == 1000 + 2  # the counters, the index and one set
    assert all(0 < use_redis.ttl(key) <= 60 + store.EXCESS_GRACE for key in ours)


def test_a_later_pass_updates_the_aggregate_without_a_new_audit_row_or_event(
    make_rule, events, counter_store
):
    rule = make_rule(scope="ip", key="*", max_requests=1)
    rules = RuleSet.build([rule])
    now = time.time()
    for ip in ("192.0.2.1", "192.0.2.1"):
        check(rules, Identity(ip=ip), now=now)

    first = services.report_exceeded(now=now)
    for ip in ("192.0.2.2", "192.0.2.2", "192.0.2.2", "192.0.2.1"):
        check(rules, Identity(ip=ip), now=now)
    second = services.report_exceeded(now=now)

    assert (first, second) == (1, 0)
    report = RateLimitSnapshot.objects.get()
    assert report.keys_over == 2
    assert report.top_offenders == [
        {"value": "192.0.2.1", "count": 3},
        {"value": "192.0.2.2", "count": 3},
    ] or report.top_offenders == [
        {"value": "192.0.2.2", "count": 3},
        {"value": "192.0.2.1", "count": 3},
    ]
    assert SystemLog.objects.filter(action="ratelimits.exceeded").count() == 1
    assert len(events) == 1
    assert events[0]["payload"]["keys_over"] == 1


def test_a_report_is_forgotten_once_its_windows_are_over(make_rule, counter_store):
    rule = make_rule(scope="global", key="*", max_requests=1, window_seconds=60)
    rules = RuleSet.build([rule])
    now = 1_800_000_000.0
    for _ in range(2):
        check(rules, Identity(), now=now)

    services.report_exceeded(now=now)
    kept = [e.report for e in get_store().excess(top=1)]
    services.report_exceeded(now=now + 60 + services.REPORT_SETTLE_SECONDS)

    assert len(kept) == 1
    assert get_store().excess(top=1) == []
    assert RateLimitSnapshot.objects.get().report == kept[0]


def test_a_report_already_written_by_another_worker_is_not_written_twice(make_rule, events):
    rule = make_rule(scope="global", key="*", max_requests=1)
    rules = RuleSet.build([rule])
    now = time.time()
    local = LocalStore()
    other = LocalStore()
    for counters in (local, other):  # two processes saw the same window go over
        for _ in range(2):
            check(rules, Identity(), now=now, store=counters)

    written = [services.report_exceeded(store=s, now=now) for s in (local, other)]

    assert written == [1, 0]
    assert RateLimitSnapshot.objects.count() == 1
    assert len(events) == 1


def test_the_report_of_a_deleted_rule_is_dropped_with_a_warning(make_rule, events, caplog):
    rule = make_rule(scope="global", key="*", max_requests=1)
    rules = RuleSet.build([rule])
    for _ in range(2):
        check(rules, Identity(), now=1000.0)
    RateLimitRule.objects.filter(pk=rule.pk).delete()

    with caplog.at_level(logging.WARNING, logger="ratelimits.services"):
        written = services.report_exceeded(now=1000.0)

    assert written == 0
    assert get_store().excess(top=1) == []  # dropped at once, not reported again
    assert not RateLimitSnapshot.objects.exists()
    assert events == []
    assert "its rule was deleted" in caplog.text


def test_local_memory_keeps_the_highest_counts_only():
    counters = LocalStore()

    for number in range(3 * EXCESS_TOP_KEPT):
        key = f"k{number}"
        for _ in range(number % 7 + 2):
            counters.incr_many([key], [60], [1], ["1:60:1"], 600)

    (excess,) = counters.excess(top=5)
    assert excess.keys_over == 3 * EXCESS_TOP_KEPT
    assert [count for _key, count in excess.top] == [8] * 5
    assert len(counters._excess["1:60:1"][1]) <= 2 * EXCESS_TOP_KEPT


def test_the_worker_step_reports_and_survives_redis_down(make_rule, use_redis, settings):
    rule = make_rule(scope="global", key="*", max_requests=1)
    rules = RuleSet.build([rule])
    for _ in range(2):
        check(rules, Identity())
    handled = services.report_exceeded_step()
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    store.reset_store()

    assert (handled, services.report_exceeded_step()) == (1, 0)
    assert RateLimitSnapshot.objects.get().keys_over == 1


def test_snapshot_api_and_admin_show_the_aggregate(
    api_client, make_rule, viewer, staff_user, client
):
    make_rule(scope="ip", key="*", max_requests=1)
    for ip in ("192.0.2.1", "192.0.2.1", "192.0.2.2", "192.0.2.2", "192.0.2.2"):
        get(api_client, ip=ip)
    services.report_exceeded()
    report = RateLimitSnapshot.objects.get()
    RateLimitRule.objects.update(enabled=False)
    ruleset.invalidate()
    client.force_login(staff_user)

    body = viewer.get("/system/ratelimits/snapshots").json()
    page = client.get(f"/admin/ratelimits/ratelimitsnapshot/{report.pk}/change/")
    listing = client.get("/admin/ratelimits/ratelimitsnapshot/")

    (row,) = body["results"]
    assert (row["key"], row["keys_over"], row["current_count"]) == ("*", 2, 3)
    assert row["top_offenders"] == [
        {"value": "192.0.2.2", "count": 3},
        {"value": "192.0.2.1", "count": 2},
    ]
    assert row["report"] == report.report
    assert page.status_code == 200
    assert "192.0.2.2: 3<br>192.0.2.1: 2" in page.content.decode()
    assert "Keys over" in listing.content.decode()


def test_a_failed_report_is_tried_again_on_the_next_pass(make_rule, monkeypatch):
    from notify import services as notify_services

    rule = make_rule(scope="global", key="*", max_requests=1)
    rules = RuleSet.build([rule])
    now = time.time()
    for _ in range(2):
        check(rules, Identity(), now=now)
    real = notify_services.emit_event

    def broken(**kwargs):
        raise RuntimeError("notify is down")

    monkeypatch.setattr(notify_services, "emit_event", broken)
    failed = services.report_exceeded(now=now)
    monkeypatch.setattr(notify_services, "emit_event", real)
    retried = services.report_exceeded(now=now)

    assert (failed, retried) == (0, 1)
    assert RateLimitSnapshot.objects.get().keys_over == 1


def test_local_memory_drops_expired_excess_records():
    counters = LocalStore()
    for _ in range(2):
        counters.incr_many(["k"], [60], [1], ["1:60:1"], 0)  # the record expires at once

    assert counters.excess(top=5) == []
    counters._sweep(time.monotonic())
    assert counters._excess == {}


def test_the_database_keeps_one_snapshot_per_report(make_rule):
    rule = make_rule(scope="global", key="*", max_requests=1)
    fields = {
        "rule": rule,
        "scope": "global",
        "key": "*",
        "window_seconds": 60,
        "max_requests": 1,
        "current_count": 2,
        "window_started_at": timezone.now(),
    }
    RateLimitSnapshot.objects.create(report=f"{rule.pk}:60:1", **fields)
    RateLimitSnapshot.objects.create(**fields)  # snapshots on demand have no report
    RateLimitSnapshot.objects.create(**fields)

    with pytest.raises(IntegrityError), transaction.atomic():
        RateLimitSnapshot.objects.create(report=f"{rule.pk}:60:1", **fields)

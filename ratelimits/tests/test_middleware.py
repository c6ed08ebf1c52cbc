import math
import time
import zlib
from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from ratelimits import ruleset, services
from ratelimits.models import RateLimitSnapshot
from ratelimits.store import get_store
from ratelimits.tests.helpers import get, statuses
from valhalla_ops import registry
from valhalla_ops.models import SystemLog

pytestmark = pytest.mark.django_db


def test_no_matching_rule_means_no_headers_and_no_counting(api_client, make_rule):
    make_rule(scope="ip", key="192.0.2.99", max_requests=1)

    responses = [get(api_client) for _ in range(3)]

    assert [r.status_code for r in responses] == [401, 401, 401]
    assert all("RateLimit" not in r for r in responses)
    assert get_store().counters("") == []


def test_ip_rule_allows_max_then_429(api_client, make_rule, counter_store):
    rule = make_rule(scope="ip", key="127.0.0.1", max_requests=2, window_seconds=60)

    first, second, third = (get(api_client) for _ in range(3))

    assert [first.status_code, second.status_code, third.status_code] == [401, 401, 429]
    assert first["RateLimit"].startswith("limit=2, remaining=1, reset=")
    assert second["RateLimit"].startswith("limit=2, remaining=0, reset=")
    assert first["RateLimit-Policy"] == "2;w=60"
    body = third.json()
    assert body["status_code"] == 429
    assert body["rule"] == {
        "id": rule.pk,
        "scope": "ip",
        "key": "127.0.0.1",
        "max_requests": 2,
        "window_seconds": 60,
    }
    assert "Rate limit exceeded" in body["detail"]
    assert body["window_ends_at"].endswith("Z")
    assert third["RateLimit"].startswith("limit=2, remaining=0, reset=")
    assert 1 <= int(third["Retry-After"]) <= 60


def test_star_ip_rule_counts_each_address(api_client, make_rule, counter_store):
    make_rule(scope="ip", key="*", max_requests=1)

    a1, a2 = get(api_client, ip="192.0.2.1"), get(api_client, ip="192.0.2.1")
    b1 = get(api_client, ip="192.0.2.2")

    assert (a1.status_code, a2.status_code, b1.status_code) == (401, 429, 401)


def test_cidr_rule_matches_addresses_inside_only(api_client, make_rule):
    make_rule(scope="ip", key="10.0.0.0/8", max_requests=2)

    inside = [get(api_client, ip=ip).status_code for ip in ("10.1.1.1", "10.2.2.2", "10.3.3.3")]
    outside = get(api_client, ip="11.0.0.1")

    assert inside == [401, 401, 429]  # one counter for the whole block
    assert "RateLimit" not in outside
    assert outside.status_code == 401


def test_ipv6_clients_are_grouped_by_64(api_client, make_rule):
    make_rule(scope="ip", key="*", max_requests=1)

    first = get(api_client, ip="2001:db8:1:2::1")
    same_64 = get(api_client, ip="2001:db8:1:2:ffff:ffff:ffff:ffff")
    other_64 = get(api_client, ip="2001:db8:1:3::1")

    assert (first.status_code, same_64.status_code, other_64.status_code) == (401, 429, 401)
    report = RateLimitSnapshot.objects.get()
    assert (report.key, report.keys_over) == ("*", 1)
    assert report.top_offenders == [{"value": "2001:db8:1:2::/64", "count": 2}]


def test_ipv6_address_rule_covers_its_64(api_client, make_rule):
    make_rule(scope="ip", key="2001:db8::1", max_requests=1)

    codes = [get(api_client, ip=ip).status_code for ip in ("2001:db8::5", "2001:db8::1:2")]

    assert codes == [401, 429]


def test_spoofed_forwarded_for_from_untrusted_peer_changes_nothing(api_client, make_rule, settings):
    settings.TRUSTED_PROXIES = []
    make_rule(scope="ip", key="203.0.113.7", max_requests=1)
    make_rule(scope="ip", key="198.51.100.1", max_requests=1)

    codes = [
        get(api_client, ip="203.0.113.7", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code
        for n in range(1, 4)
    ]

    assert codes == [401, 429, 429]  # counted on the real peer, whatever the header says
    assert RateLimitSnapshot.objects.get().key == "203.0.113.7"


def test_forwarded_for_is_believed_from_a_trusted_proxy(api_client, make_rule, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    make_rule(scope="ip", key="*", max_requests=1)

    first = get(api_client, ip="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.1")
    other_client = get(api_client, ip="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.2")
    again = get(api_client, ip="10.0.0.3", HTTP_X_FORWARDED_FOR="198.51.100.1")

    assert (first.status_code, other_client.status_code, again.status_code) == (401, 401, 429)
    assert RateLimitSnapshot.objects.get().top_offenders == [{"value": "198.51.100.1", "count": 2}]


def test_two_trusted_hops_count_the_client_not_the_proxy(api_client, make_rule, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "192.168.0.0/16"]
    make_rule(scope="ip", key="*", max_requests=1)

    def through_proxies(client_address: str, forged: str = "") -> int:
        chain = ", ".join(a for a in (forged, client_address, "192.168.0.5") if a)
        return get(api_client, ip="10.0.0.2", HTTP_X_FORWARDED_FOR=chain).status_code

    codes = [through_proxies("198.51.100.1"), through_proxies("198.51.100.2")]
    forged = through_proxies("198.51.100.1", forged="203.0.113.99")

    assert codes == [401, 401]  # two users behind the same proxies: two counters
    assert forged == 429  # a forged leftmost entry does not make a new client
    assert RateLimitSnapshot.objects.get().top_offenders == [{"value": "198.51.100.1", "count": 2}]


def test_api_key_rule_counts_the_client(viewer, operator, make_rule, api_client):
    make_rule(scope="api_key", key=str(viewer.api_client.pk), max_requests=1)

    first, second = get(viewer), get(viewer)
    other = get(operator)
    anonymous = get(api_client)

    assert (first.status_code, second.status_code) == (200, 429)
    assert other.status_code == 200
    assert "RateLimit" not in other
    assert "RateLimit" not in anonymous


def test_api_key_star_rule_gives_each_client_a_counter(viewer, make_api_client, make_rule):
    _client, key = make_api_client(name="second", groups=("ops-viewer",))
    second = APIClient()
    second.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    make_rule(scope="api_key", key="*", max_requests=1)

    codes = [get(viewer).status_code, get(second).status_code, get(viewer).status_code]

    assert codes == [200, 200, 429]
    report = RateLimitSnapshot.objects.get()
    assert report.top_offenders == [{"value": str(viewer.api_client.pk), "count": 2}]


def test_user_rule_counts_the_session_user(staff_user, django_user_model, make_rule):
    other = django_user_model.objects.create(username="other", is_staff=True)
    make_rule(scope="user", key=str(staff_user.pk), max_requests=1)
    mine, theirs = APIClient(), APIClient()
    mine.force_login(staff_user)
    theirs.force_login(other)

    codes = [get(mine).status_code, get(mine).status_code, get(theirs).status_code]

    assert codes == [200, 429, 403]  # the other user has no permission, but is not limited


def test_user_star_rule(staff_user, make_rule, api_client):
    make_rule(scope="user", key="*", max_requests=1)
    session = APIClient()
    session.force_login(staff_user)

    codes = [get(session).status_code, get(session).status_code]
    anonymous = [get(api_client).status_code, get(api_client).status_code]

    assert codes == [200, 429]
    assert anonymous == [401, 401]


def test_path_rule_is_a_prefix_on_segment_boundaries(api_client, make_rule):
    make_rule(scope="path", key="/system/ratelimits", max_requests=2)

    codes = [
        get(api_client, path="/system/ratelimits/rules").status_code,
        get(api_client, path="/system/ratelimits/snapshots").status_code,
        get(api_client, path="/system/ratelimits").status_code,
    ]
    unrelated = get(api_client, path="/system/ratelimitsX")
    clients = get(api_client, path="/system/clients/")

    assert codes == [401, 401, 429]
    assert "RateLimit" not in unrelated
    assert "RateLimit" not in clients


def test_path_star_rule_counts_each_path(api_client, make_rule):
    make_rule(scope="path", key="*", max_requests=1)

    codes = [
        get(api_client, path="/system/ratelimits/rules").status_code,
        get(api_client, path="/system/clients/").status_code,
        get(api_client, path="/system/ratelimits/rules").status_code,
    ]

    assert codes == [401, 401, 429]


def test_global_rule_counts_everyone_together(api_client, make_rule, counter_store):
    make_rule(scope="global", key="*", max_requests=2)

    codes = [get(api_client, ip=ip).status_code for ip in ("192.0.2.1", "192.0.2.2", "192.0.2.3")]

    assert codes == [401, 401, 429]


def test_disabled_rule_is_not_enforced(api_client, make_rule):
    make_rule(scope="global", key="*", max_requests=1, enabled=False)

    assert statuses(api_client, 3) == [401, 401, 401]


def test_strictest_rule_decides_and_fills_the_headers(api_client, make_rule, counter_store):
    loose = make_rule(scope="ip", key="*", max_requests=5, window_seconds=60)
    strict = make_rule(scope="global", key="*", max_requests=2, window_seconds=3600)

    first, second, third = (get(api_client) for _ in range(3))

    assert first["RateLimit"].startswith("limit=2, remaining=1, ")
    assert first["RateLimit-Policy"] == "2;w=3600, 5;w=60"
    assert second["RateLimit"].startswith("limit=2, remaining=0, ")
    assert third.status_code == 429
    assert third.json()["rule"]["id"] == strict.pk
    assert loose.pk != strict.pk


def test_over_two_limits_the_longest_wait_decides(api_client, make_rule, time_machine):
    time_machine.move_to(datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC), tick=False)
    make_rule(scope="ip", key="*", max_requests=1, window_seconds=10)
    long_wait = make_rule(scope="global", key="*", max_requests=1, window_seconds=86400)
    # One second into the global rule's window (its offset depends on the rule id), so a
    # day is left in it whatever id the database gave.
    day_end = expected_window_end(long_wait, ruleset.ANY, time.time())
    time_machine.move_to(datetime.fromtimestamp(day_end - 86400 + 1, tz=UTC), tick=False)

    get(api_client)
    refused = get(api_client)

    assert refused.status_code == 429
    assert refused.json()["rule"]["id"] == long_wait.pk
    assert int(refused["Retry-After"]) == 86400 - 1


def expected_window_end(rule, value: str, now: float) -> float:
    counter = ruleset.counter_prefix(rule.pk, rule.window_seconds) + value
    offset = zlib.crc32(counter.encode()) % rule.window_seconds
    start = (now - offset) // rule.window_seconds * rule.window_seconds + offset
    return start + rule.window_seconds


def test_exact_retry_after_and_headers_with_a_fake_clock(api_client, make_rule, time_machine):
    time_machine.move_to(datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC), tick=False)
    rule = make_rule(scope="ip", key="*", max_requests=1, window_seconds=60)
    # A quarter second into a window (its offset depends on the rule id): 59.75 s are left,
    # so the shift by 5 s below stays inside it.
    start = expected_window_end(rule, "127.0.0.1", time.time())
    now = datetime.fromtimestamp(start + 0.25, tz=UTC)
    time_machine.move_to(now, tick=False)
    end = expected_window_end(rule, "127.0.0.1", now.timestamp())
    left = math.ceil(end - now.timestamp())
    assert left == 60

    allowed = get(api_client)
    refused = get(api_client)
    time_machine.shift(5)
    later = get(api_client)
    time_machine.move_to(datetime.fromtimestamp(end, tz=UTC), tick=False)
    next_window = get(api_client)

    assert allowed["RateLimit"] == f"limit=1, remaining=0, reset={left}"
    assert refused["Retry-After"] == str(left)
    assert refused["RateLimit"] == f"limit=1, remaining=0, reset={left}"
    assert refused["RateLimit-Policy"] == "1;w=60"
    assert refused.json()["window_ends_at"] == datetime.fromtimestamp(
        end, tz=UTC
    ).isoformat().replace("+00:00", "Z")
    assert later["Retry-After"] == str(math.ceil(end - now.timestamp() - 5))
    assert next_window.status_code == 401
    assert next_window["RateLimit"] == "limit=1, remaining=0, reset=60"


def test_one_snapshot_and_one_event_per_window(
    api_client, make_rule, events, time_machine, counter_store
):
    time_machine.move_to(datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC), tick=False)
    rule = make_rule(scope="ip", key="*", max_requests=2, window_seconds=60)

    codes = statuses(api_client, 6)
    services.report_exceeded()
    time_machine.shift(60)
    codes_next_window = statuses(api_client, 4)
    services.report_exceeded()

    assert codes == [401, 401, 429, 429, 429, 429]
    assert codes_next_window == [401, 401, 429, 429]
    snapshots = list(RateLimitSnapshot.objects.order_by("id"))
    assert len(snapshots) == 2
    first = snapshots[0]
    assert (first.rule_id, first.scope, first.key, first.keys_over) == (rule.pk, "ip", "*", 1)
    assert (first.current_count, first.max_requests, first.window_seconds) == (6, 2, 60)
    assert first.top_offenders == [{"value": "127.0.0.1", "count": 6}]
    assert snapshots[1].window_started_at.timestamp() == first.window_started_at.timestamp() + 60
    assert [e["topic"] for e in events] == ["ratelimit.exceeded", "ratelimit.exceeded"]
    payload = events[0]["payload"]
    assert payload["rule"]["id"] == rule.pk
    assert (payload["value"], payload["keys_over"], payload["snapshot_id"]) == (
        "127.0.0.1",
        1,
        first.pk,
    )
    logs = SystemLog.objects.filter(action="ratelimits.exceeded")
    assert logs.count() == 2
    first_log = logs.first()
    assert first_log is not None
    assert first_log.level == "warning"


def test_with_redis_a_refused_request_writes_nothing_the_worker_reports(
    api_client, make_rule, use_redis, django_assert_num_queries
):
    make_rule(scope="ip", key="*", max_requests=1)
    get(api_client)  # rules loaded, counted

    with django_assert_num_queries(0):
        refused = get(api_client)

    assert refused.status_code == 429
    assert not RateLimitSnapshot.objects.exists()
    assert registry.worker_steps.get("ratelimits") is services.report_exceeded_step
    services.report_exceeded_step()  # what run_worker runs on each pass
    report = RateLimitSnapshot.objects.get()
    assert (report.keys_over, report.top_offenders) == (1, [{"value": "127.0.0.1", "count": 2}])
    assert SystemLog.objects.filter(action="ratelimits.exceeded").count() == 1


def test_a_failing_snapshot_never_turns_429_into_500(api_client, make_rule, monkeypatch):
    from notify import services as notify_services

    def broken(**kwargs):
        raise RuntimeError("notify is down")

    monkeypatch.setattr(notify_services, "emit_event", broken)
    make_rule(scope="ip", key="*", max_requests=1)

    codes = statuses(api_client, 3)

    assert codes == [401, 429, 429]
    assert not RateLimitSnapshot.objects.exists()  # rolled back with the failed event


def test_the_audit_row_records_the_client_behind_two_trusted_hops(operator, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "192.168.0.0/16"]

    created = operator.post(
        "/system/ratelimits/rules",
        {"scope": "ip", "key": "*", "max_requests": 5},
        format="json",
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="203.0.113.99, 198.51.100.4, 192.168.0.5",
    )

    assert created.status_code == 201
    row = SystemLog.objects.get(action="ratelimits.create_rule")
    assert row.client_ip == "198.51.100.4"

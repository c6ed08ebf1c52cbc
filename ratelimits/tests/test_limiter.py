"""The decision engine and the counter stores, without HTTP."""

import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from ratelimits import keys, limiter
from ratelimits import store as store_module
from ratelimits.ruleset import Identity, Rule, RuleSet, counter_prefix
from ratelimits.store import LocalStore, RedisStore, StoreUnavailable, get_store


def rule(rule_id: int = 1, **fields) -> Rule:
    values = {"scope": "ip", "key": "*", "window_seconds": 60, "max_requests": 3, **fields}
    return Rule(
        id=rule_id, counter_prefix=counter_prefix(rule_id, values["window_seconds"]), **values
    )


def check_matched(rules: RuleSet, identity: Identity, **options: Any) -> limiter.Decision:
    """limiter.check for an identity some rule matches, so there is a decision."""
    decision = limiter.check(rules, identity, **options)
    assert decision is not None
    return decision


def redis_store() -> RedisStore:
    """The store in use, which the use_redis fixture makes Redis."""
    store = get_store()
    assert isinstance(store, RedisStore)
    return store


def spy_on_commands(monkeypatch) -> list[str]:
    """The names of the commands the store sends on its decision connections, in order.

    Counted where the store sends them, not from the server's stats: other clients share it.
    """
    sent: list[str] = []
    original = store_module.send

    def spy(connection, command):
        sent.append(str(command[0]))
        return original(connection, command)

    monkeypatch.setattr(store_module, "send", spy)
    return sent


def test_redis_store_packs_commands_as_redis_py_would(use_redis):
    connection = redis_store().connection()
    command = ("EVALSHA", "ab" * 20, 3, "k", "vo:rlx", "vo:rlx:1", 60, 2**62, "1:60:5", 360, 100)

    store_module.send(connection, ("PING",))
    pong = connection.read_response()

    assert pong in (b"PONG", "PONG")
    assert store_module.hiredis is not None
    packed = store_module.hiredis.pack_command(command)  # type: ignore[arg-type]
    assert [packed] == connection.pack_command(*command)


def test_window_is_aligned_to_the_epoch_plus_a_per_counter_offset():
    counter = "vo:rl:1:60:192.0.2.1"
    offset = zlib.crc32(counter.encode()) % 60

    index, start = limiter.window_of(counter, 60, 1_800_000_000.5)

    assert start == index * 60 + offset
    assert start <= 1_800_000_000.5 < start + 60
    assert limiter.window_of(counter, 60, start + 59.999)[0] == index
    assert limiter.window_of(counter, 60, start + 60)[0] == index + 1


def test_window_offsets_differ_between_counters():
    starts = {limiter.window_of(f"vo:rl:1:60:192.0.2.{n}", 60, 1_800_000_000)[1] for n in range(50)}

    assert len(starts) > 10  # spread, so the windows do not all roll over together


def test_check_returns_none_without_a_match():
    rules = RuleSet.build([rule(key="192.0.2.1")])

    assert limiter.check(rules, Identity(ip="192.0.2.2", path="/")) is None
    assert get_store().counters("") == []


def test_check_counts_every_matching_rule_in_one_call():
    rules = RuleSet.build([rule(1), rule(2, scope="global", max_requests=2)])
    store = LocalStore()
    identity = Identity(ip="192.0.2.1", path="/x")

    decisions = [check_matched(rules, identity, now=1000.0, store=store) for _ in range(3)]

    assert [d.allowed for d in decisions] == [True, True, False]
    assert decisions[0].strictest.rule.id == 2  # fewest left
    assert [v.count for v in decisions[2].verdicts] == [3, 3]
    assert [e.report for e in store.excess(top=5)] == [f"2:60:{int(1000.0 // 60)}"]


def test_decision_headers_and_reset_round_up():
    rules = RuleSet.build([rule(max_requests=100)])
    now = 1_800_000_000.25
    _index, start = limiter.window_of(rules.rules[0].counter_prefix + "192.0.2.1", 60, now)

    decision = check_matched(rules, Identity(ip="192.0.2.1"), now=now, store=LocalStore())

    reset = int(-(-(start + 60 - now) // 1))
    assert decision.headers() == {
        "RateLimit-Policy": "100;w=60",
        "RateLimit": f"limit=100, remaining=99, reset={reset}",
    }


def test_ruleset_can_be_built_from_unsaved_models():
    from ratelimits.models import RateLimitRule

    rules = RuleSet.build([RateLimitRule(id=7, scope="path", key="/api", max_requests=5)])

    matches = rules.match(Identity(ip="192.0.2.1", path="/api/things"))

    assert [(m.rule.id, m.value) for m in matches] == [(7, "/api")]


def test_long_paths_are_counted_under_a_hash():
    rules = RuleSet.build([rule(scope="path")])
    path = "/" + "x" * 500

    (match,) = rules.match(Identity(path=path))

    assert len(match.counter) < 100
    assert match.value == path[:255]


@pytest.mark.parametrize(
    ("scope", "key", "expected"),
    [
        ("ip", "192.168.1.1", "192.168.1.1"),
        ("ip", " 10.1.2.3/8 ", "10.0.0.0/8"),
        ("ip", "2001:DB8::1", "2001:db8::1"),
        ("ip", "*", "*"),
        ("api_key", "007", "7"),
        ("user", "42", "42"),
        ("path", "/system/x", "/system/x"),
        ("global", "*", "*"),
    ],
)
def test_normalize_key_accepts(scope, key, expected):
    assert keys.normalize_key(scope, key) == expected


@pytest.mark.parametrize(
    ("scope", "key"),
    [
        ("ip", "1.2.3"),
        ("ip", "::g"),
        ("api_key", "0"),
        ("api_key", "١٢"),
        ("user", "me"),
        ("path", "relative"),
        ("path", "/with space"),
        ("global", "x"),
        ("ip", ""),
        ("moon", "*x"),
    ],
)
def test_normalize_key_refuses(scope, key):
    with pytest.raises(keys.InvalidKey):
        keys.normalize_key(scope, key)


def test_ip_identity_groups_ipv6_by_64_and_unmaps_ipv4():
    assert keys.ip_identity("2001:db8:a:b:c:d:e:f") == "2001:db8:a:b::/64"
    assert keys.ip_identity("::ffff:192.0.2.1") == "192.0.2.1"
    assert keys.ip_identity("192.0.2.1") == "192.0.2.1"
    assert keys.ip_identity("garbage:") is None


def test_local_store_counts_and_expires():
    store = LocalStore()

    counts = [store.incr_many(["a", "b"], [60, 0]) for _ in range(3)]

    assert [c[0] for c in counts] == [1, 2, 3]
    assert [c[1] for c in counts] == [1, 1, 1]  # a zero ttl expires at once


def test_local_store_is_thread_safe():
    store = LocalStore()

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda _: store.incr_many(["k"], [60])[0], range(2000)))

    assert sorted(results) == list(range(1, 2001))


def test_redis_store_one_round_trip_for_every_rule(use_redis, monkeypatch):
    rules = RuleSet.build([rule(1), rule(2, scope="global"), rule(3, scope="path", key="/x")])
    limiter.check(rules, Identity(ip="192.0.2.200"))  # the script is loaded by now
    sent = spy_on_commands(monkeypatch)

    decision = check_matched(rules, Identity(ip="192.0.2.1", path="/x/y"))

    assert [(v.rule.id, v.count) for v in decision.verdicts] == [(1, 1), (3, 1), (2, 2)]
    assert sent == ["EVALSHA"]


def test_redis_store_survives_its_connection_being_dropped(use_redis):
    store = redis_store()
    store.incr_many(["vo:test:drop"], [60])
    connection = store.connection()
    connection.send_command("CLIENT", "ID")
    client_id = connection.read_response()

    use_redis.client_kill_filter(_id=client_id)  # the server drops it, as a restart would
    counts = [store.incr_many(["vo:test:drop"], [60])[0] for _ in range(2)]

    assert counts == [2, 3]


def test_each_thread_has_its_own_connection(use_redis):
    store = redis_store()

    with ThreadPoolExecutor(max_workers=2) as pool:
        connections = set(pool.map(lambda _: id(store.connection()), range(2)))
    mine = store.connection()

    assert mine is store.connection()
    assert id(mine) not in connections


@pytest.mark.parametrize("keys", [["vo:test:s"], ["vo:test:s", "vo:test:t"]])
def test_redis_store_loads_a_script_the_server_does_not_know(use_redis, keys):
    store = redis_store()
    script = store.script
    script.sha = "0" * 40  # as after a Redis restart (without flushing the shared Redis)

    counts = store.incr_many(keys, [60] * len(keys))

    assert counts == [1] * len(keys)
    assert use_redis.script_exists(script.sha) == [True]


def test_redis_store_sets_expiry_on_first_increment(use_redis):
    store = get_store()

    store.incr_many(["vo:test:a"], [30])
    store.incr_many(["vo:test:a"], [900])

    assert use_redis.get("vo:test:a") == b"2"
    assert 0 < use_redis.ttl("vo:test:a") <= 30


def test_redis_store_is_atomic_under_threads(use_redis):
    store = get_store()

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(lambda _: store.incr_many(["vo:test:c"], [60])[0], range(500)))

    assert sorted(results) == list(range(1, 501))


def test_redis_down_raises_quickly(redis_down):
    store = get_store()
    started = time.perf_counter()

    with pytest.raises(StoreUnavailable):
        store.incr_many(["k"], [60])
    with pytest.raises(StoreUnavailable, match="less than a second"):
        store.incr_many(["k"], [60])  # the breaker skips Redis for a moment

    assert time.perf_counter() - started < 1.0


def test_read_counters_returns_current_windows_only(counter_store):
    compiled = rule(max_requests=10)
    rules = RuleSet.build([compiled])
    now = time.time()
    for ip in ("192.0.2.1", "192.0.2.1", "2001:db8::1"):
        limiter.check(rules, Identity(ip=ip), now=now)
    limiter.check(rules, Identity(ip="192.0.2.9"), now=now - 3600)  # an old window

    states = limiter.read_counters(compiled, now=now)

    assert sorted((s.value, s.count) for s in states) == [("192.0.2.1", 2), ("2001:db8::/64", 1)]


def test_cidr_rules_match_by_version_and_network():
    rules = RuleSet.build([rule(1, key="10.0.0.0/8"), rule(2, key="2001:db8::/32")])

    def matched(ip: str) -> list[int]:
        return [m.rule.id for m in rules.match(Identity(ip=ip))]

    assert matched("10.200.0.1") == [1]
    assert matched("::ffff:10.1.1.1") == [1]  # IPv4-mapped counts as IPv4
    assert matched("11.0.0.1") == []
    assert matched("2001:db8:5::1") == [2]
    assert matched("2001:db9::1") == []


def test_every_number_comes_from_redis_whatever_the_limit(use_redis, monkeypatch):
    store = redis_store()
    sent = spy_on_commands(monkeypatch)

    counts = [store.incr_many(["vo:test:big"], [60], [100_000], ["1:60:1"])[0] for _ in range(130)]

    assert counts == list(range(1, 131))
    assert sent.count("EVALSHA") == 130  # one round trip per decision, nothing reserved ahead
    assert int(use_redis.get("vo:test:big")) == 130
    assert 0 < use_redis.ttl("vo:test:big") <= 60

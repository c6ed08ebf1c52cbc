import pytest
from django.db import IntegrityError, transaction

from ratelimits import ruleset, services
from ratelimits.limiter import check
from ratelimits.models import RateLimitRule, RateLimitSnapshot
from ratelimits.ruleset import Identity
from valhalla_ops.exceptions import ServiceError
from valhalla_ops.models import SystemLog
from valhalla_ops.principals import SYSTEM

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "fields",
    [
        {"scope": "bogus", "key": "*", "max_requests": 1},
        {"scope": "ip", "key": "*", "max_requests": 0},
        {"scope": "ip", "key": "*", "max_requests": 1, "window_seconds": 0},
        {"scope": "global", "key": "1.2.3.4", "max_requests": 1},
    ],
)
def test_database_refuses_invalid_rules(fields):
    with pytest.raises(IntegrityError), transaction.atomic():
        RateLimitRule.objects.create(**fields)


def test_database_refuses_duplicate_rules():
    RateLimitRule.objects.create(scope="ip", key="*", max_requests=1)

    with pytest.raises(IntegrityError), transaction.atomic():
        RateLimitRule.objects.create(scope="ip", key="*", max_requests=5)


def test_create_rule_writes_one_audit_row_and_invalidates_on_commit(
    django_capture_on_commit_callbacks,
):
    ruleset.current_rules()  # cached, empty

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        rule = services.create_rule(actor=SYSTEM, scope="path", key="/system", max_requests=3)

    assert len(callbacks) == 1
    assert [r.id for r in ruleset.current_rules().rules] == [rule.pk]
    log = SystemLog.objects.get()
    assert (log.action, log.actor, log.target_id) == (
        "ratelimits.create_rule",
        "system",
        str(rule.pk),
    )


def test_update_rule_refuses_unknown_fields_and_duplicates(make_rule):
    make_rule(scope="ip", key="192.0.2.1")
    rule = make_rule(scope="ip", key="192.0.2.2")

    with pytest.raises(ServiceError):
        services.update_rule(actor=SYSTEM, rule=rule, id=5)
    with pytest.raises(ServiceError, match="already exists"):
        services.update_rule(actor=SYSTEM, rule=rule, key="192.0.2.1")

    rule.refresh_from_db()
    assert rule.key == "192.0.2.2"


def test_changing_scope_revalidates_the_key(make_rule):
    rule = make_rule(scope="ip", key="192.0.2.1")

    with pytest.raises(ServiceError, match="path key"):
        services.update_rule(actor=SYSTEM, rule=rule, scope="path")


def test_delete_rule_keeps_its_snapshots(make_rule):
    rule = make_rule(scope="ip", key="*")
    snapshot = RateLimitSnapshot.objects.create(
        rule=rule,
        scope="ip",
        key="192.0.2.1",
        window_seconds=60,
        max_requests=1,
        current_count=2,
        window_started_at="2026-01-01T00:00:00Z",
    )

    services.delete_rule(actor=SYSTEM, rule=rule)

    snapshot.refresh_from_db()
    assert snapshot.rule_id is None
    assert SystemLog.objects.filter(action="ratelimits.delete_rule").count() == 1


def test_snapshot_counters_writes_one_row_per_counter_and_one_audit_row(make_rule, counter_store):
    star = make_rule(scope="ip", key="*", max_requests=10)
    fixed = make_rule(scope="global", key="*", max_requests=10)
    make_rule(scope="path", key="/quiet", max_requests=10)
    rules = ruleset.current_rules()
    for ip in ("192.0.2.1", "192.0.2.2", "192.0.2.2"):
        check(rules, Identity(ip=ip, path="/"))

    states = services.snapshot_counters(actor=SYSTEM)

    rows = sorted(RateLimitSnapshot.objects.values_list("rule_id", "key", "current_count"))
    assert rows == [(star.pk, "192.0.2.1", 1), (star.pk, "192.0.2.2", 2), (fixed.pk, "*", 3)]
    assert len(states) == 3
    log = SystemLog.objects.get(action="ratelimits.snapshot")
    assert log.context["counters"] == 3


def test_snapshot_counters_dry_run_writes_nothing(make_rule):
    make_rule(scope="global", key="*", max_requests=10)
    check(ruleset.current_rules(), Identity())

    states = services.snapshot_counters(actor=SYSTEM, dry_run=True)

    assert [s.count for s in states] == [1]
    assert not RateLimitSnapshot.objects.exists()
    assert not SystemLog.objects.filter(action="ratelimits.snapshot").exists()

import json

import pytest
from django.core.management import CommandError, call_command

from ratelimits import ruleset
from ratelimits.limiter import check
from ratelimits.models import RateLimitRule, RateLimitSnapshot
from ratelimits.ruleset import Identity
from valhalla_ops.models import SystemLog

pytestmark = pytest.mark.django_db


def count_some(make_rule) -> RateLimitRule:
    rule = make_rule(scope="ip", key="*", max_requests=5)
    for ip in ("192.0.2.1", "192.0.2.1", "192.0.2.7"):
        check(ruleset.current_rules(), Identity(ip=ip))
    return rule


def test_snapshot_ratelimits_writes_and_prints(make_rule, capsys, counter_store):
    rule = count_some(make_rule)

    call_command("snapshot_ratelimits")

    out = capsys.readouterr().out
    assert f"rule #{rule.pk} ip 192.0.2.1: 2/5 per 60s" in out
    assert "wrote 2 snapshot(s)" in out
    assert RateLimitSnapshot.objects.count() == 2
    assert (
        SystemLog.objects.get(action="ratelimits.snapshot").actor == "manage.py snapshot_ratelimits"
    )


def test_snapshot_ratelimits_dry_run(make_rule, capsys):
    count_some(make_rule)

    call_command("snapshot_ratelimits", "--dry-run")

    assert "would write 2 snapshot(s)" in capsys.readouterr().out
    assert not RateLimitSnapshot.objects.exists()


def test_snapshot_ratelimits_redis_down_is_a_command_error(make_rule, redis_down):
    make_rule(scope="ip", key="*")

    with pytest.raises(CommandError, match="unreachable"):
        call_command("snapshot_ratelimits")


def test_snapshot_ratelimits_dry_run_as_json(make_rule, capsys):
    rule = count_some(make_rule)

    call_command("snapshot_ratelimits", "--dry-run", "--json")

    data = json.loads(capsys.readouterr().out)
    assert data["dry_run"] is True
    assert data["written"] == 0
    assert sorted(data["counters"], key=lambda c: c["key"]) == [
        {
            "rule_id": rule.pk,
            "scope": "ip",
            "key": key,
            "count": count,
            "max_requests": 5,
            "window_seconds": 60,
        }
        for key, count in [("192.0.2.1", 2), ("192.0.2.7", 1)]
    ]
    assert not RateLimitSnapshot.objects.exists()

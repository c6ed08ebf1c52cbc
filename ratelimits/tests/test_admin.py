import pytest
from django.test import Client

from ratelimits import ruleset
from ratelimits.dashboard import dashboard_rows, security_section
from ratelimits.limiter import check
from ratelimits.models import RateLimitRule, RateLimitSnapshot
from ratelimits.ruleset import Identity
from valhalla_ops import registry
from valhalla_ops.models import SystemLog

pytestmark = pytest.mark.django_db

RULES = "/admin/ratelimits/ratelimitrule/"
SNAPSHOTS = "/admin/ratelimits/ratelimitsnapshot/"


@pytest.fixture
def browser(staff_user, settings) -> Client:
    settings.RATELIMIT_ENABLED = False
    client = Client()
    client.force_login(staff_user)
    return client


def test_add_rule_in_the_admin_goes_through_the_service(browser):
    form = {
        "scope": "ip",
        "key": "10.1.2.3/8",
        "window_seconds": 60,
        "max_requests": 10,
        "enabled": "on",
        "description": "abuse",
    }

    response = browser.post(RULES + "add/", form)

    assert response.status_code == 302, response.content
    rule = RateLimitRule.objects.get()
    assert rule.key == "10.0.0.0/8"
    log = SystemLog.objects.get(action="ratelimits.create_rule")
    assert log.actor == "staff"


def test_admin_form_refuses_a_bad_key(browser):
    form = {"scope": "ip", "key": "nope", "window_seconds": 60, "max_requests": 10}

    response = browser.post(RULES + "add/", form)

    assert response.status_code == 200
    assert "not an IP address" in response.content.decode()
    assert not RateLimitRule.objects.exists()


def test_change_and_delete_rule_in_the_admin(browser, make_rule):
    rule = make_rule(scope="ip", key="*", max_requests=5)
    form = {"scope": "ip", "key": "*", "window_seconds": 30, "max_requests": 7, "description": ""}

    changed = browser.post(f"{RULES}{rule.pk}/change/", form)
    deleted = browser.post(f"{RULES}{rule.pk}/delete/", {"post": "yes"})

    assert changed.status_code == 302
    assert deleted.status_code == 302
    assert not RateLimitRule.objects.exists()
    actions = list(SystemLog.objects.filter(category="ratelimits").values_list("action", flat=True))
    assert sorted(actions) == [
        "ratelimits.create_rule",
        "ratelimits.delete_rule",
        "ratelimits.update_rule",
    ]
    update = SystemLog.objects.get(action="ratelimits.update_rule")
    assert update.before is not None
    assert update.after is not None
    assert (update.before["enabled"], update.after["enabled"]) == (True, False)
    assert update.after["max_requests"] == 7


def test_disable_action(browser, make_rule):
    rule = make_rule(scope="ip", key="*")

    browser.post(RULES, {"action": "disable_rules", "_selected_action": [rule.pk]})

    rule.refresh_from_db()
    assert rule.enabled is False


def test_snapshot_action(browser, make_rule):
    rule = make_rule(scope="ip", key="*", max_requests=5)
    check(ruleset.current_rules(), Identity(ip="192.0.2.1"))

    browser.post(RULES, {"action": "snapshot_counters", "_selected_action": [rule.pk]})

    assert RateLimitSnapshot.objects.get().key == "192.0.2.1"


def test_lists_render_and_snapshots_are_read_only(browser, make_rule):
    make_rule(scope="ip", key="*")
    RateLimitSnapshot.objects.create(
        scope="ip",
        key="192.0.2.1",
        window_seconds=60,
        max_requests=1,
        current_count=2,
        window_started_at="2026-01-01T00:00:00Z",
    )

    rules = browser.get(RULES, {"q": "*"})
    snapshots = browser.get(SNAPSHOTS, {"scope": "ip"})
    add = browser.get(SNAPSHOTS + "add/")

    assert rules.status_code == 200
    assert snapshots.status_code == 200
    assert "192.0.2.1" in snapshots.content.decode()
    assert add.status_code == 403


def test_dashboard_and_security_sections(make_rule):
    make_rule(scope="ip", key="*", max_requests=1)
    make_rule(scope="global", key="*", max_requests=1, enabled=False)
    RateLimitSnapshot.objects.create(
        scope="ip",
        key="192.0.2.1",
        window_seconds=60,
        max_requests=1,
        current_count=2,
        window_started_at="2026-01-01T00:00:00Z",
        keys_over=3,
    )

    dashboard_section = registry.dashboard_sections.get("ratelimits")
    snapshot_section = registry.snapshot_sections.get("ratelimits")
    assert dashboard_section is not None
    assert snapshot_section is not None
    rows = dashboard_section.render()
    section = snapshot_section()

    assert rows == dashboard_rows()
    assert rows[:3] == [
        ("Rules", 2, "info"),
        ("Enabled rules", 1, "info"),
        ("Limits exceeded (24 h)", 1, "warning"),
    ]
    assert rows[3][0] == "ip 192.0.2.1"
    assert rows[3][1].endswith(", 3 key(s) over")
    assert section == security_section()
    assert section["rules_total"] == 2
    assert section["exceeded_last_24h"] == 1
    assert section["keys_over_last_24h"] == 3
    assert section["top_exceeded_last_24h"] == [{"scope": "ip", "key": "192.0.2.1", "times": 1}]
    assert section["store"] == "local-memory"


def test_admin_ops_snapshot_action(ops_admin, make_rule, settings):
    settings.RATELIMIT_ENABLED = False
    make_rule(scope="ip", key="*", max_requests=5)
    check(ruleset.current_rules(), Identity(ip="192.0.2.1"))

    dry = ops_admin.post(
        "/admin/ops/", {"action": "snapshot_ratelimits", "params": {"dry_run": True}}, format="json"
    )
    real = ops_admin.post("/admin/ops/", {"action": "snapshot_ratelimits"}, format="json")
    bad = ops_admin.post(
        "/admin/ops/", {"action": "snapshot_ratelimits", "params": {"dry_run": "x"}}, format="json"
    )

    assert dry.json()["data"]["written"] == 0
    assert real.json()["ok"] is True
    assert real.json()["data"]["counters"][0]["key"] == "192.0.2.1"
    assert bad.status_code == 400
    assert RateLimitSnapshot.objects.count() == 1


def test_retention_category_is_registered():
    category = registry.retention_categories.get("ratelimit_snapshots")

    assert category is not None
    assert category.queryset().model is RateLimitSnapshot
    assert category.date_field == "created_at"


def test_admin_index_shows_the_rate_limit_box(browser, make_rule):
    make_rule(scope="ip", key="*")

    response = browser.get("/admin/")

    assert response.status_code == 200
    assert "Rate limits" in response.content.decode()
    assert "Enabled rules" in response.content.decode()

import pytest

from ratelimits.models import RateLimitRule, RateLimitSnapshot
from valhalla_ops.models import SystemLog

pytestmark = pytest.mark.django_db

RULES = "/system/ratelimits/rules"
SNAPSHOTS = "/system/ratelimits/snapshots"


@pytest.fixture(autouse=True)
def _not_enforced(settings):
    """These tests are about the API; the rules they create must not limit their own calls."""
    settings.RATELIMIT_ENABLED = False


def make_snapshot(**fields) -> RateLimitSnapshot:
    values = {
        "scope": "ip",
        "key": "192.0.2.1",
        "window_seconds": 60,
        "max_requests": 10,
        "current_count": 11,
        "window_started_at": "2026-01-01T00:00:00Z",
        **fields,
    }
    return RateLimitSnapshot.objects.create(**values)


@pytest.mark.parametrize("path", [RULES, RULES + "/"])
def test_create_rule_seed_example(operator, path):
    body = {"scope": "ip", "key": "192.168.1.1", "max_requests": 100}

    response = operator.post(path, body, format="json")

    assert response.status_code == 201, response.content
    rule = RateLimitRule.objects.get(pk=response.data["id"])
    assert (rule.scope, rule.key, rule.max_requests) == ("ip", "192.168.1.1", 100)
    assert rule.window_seconds == 60
    assert rule.enabled is True
    assert response.data["window_seconds"] == 60
    log = SystemLog.objects.get(action="ratelimits.create_rule")
    assert log.target_id == str(rule.pk)
    assert log.actor == "client:ops-operator-caller"
    assert log.after is not None
    assert log.after["max_requests"] == 100


def test_create_rule_normalizes_cidr_key(operator):
    response = operator.post(
        RULES, {"scope": "ip", "key": "10.1.2.3/8", "max_requests": 5}, format="json"
    )

    assert response.status_code == 201
    assert response.data["key"] == "10.0.0.0/8"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"key": "1.2.3.4", "max_requests": 1}, "scope"),
        ({"scope": "ip", "max_requests": 1}, "key"),
        ({"scope": "ip", "key": "1.2.3.4"}, "max_requests"),
        ({"scope": "planet", "key": "*", "max_requests": 1}, "scope"),
        ({"scope": "ip", "key": "999.1.1.1", "max_requests": 1}, "key"),
        ({"scope": "ip", "key": "not-an-ip", "max_requests": 1}, "key"),
        ({"scope": "ip", "key": "10.0.0.0/33", "max_requests": 1}, "key"),
        ({"scope": "path", "key": "system/x", "max_requests": 1}, "key"),
        ({"scope": "api_key", "key": "abc", "max_requests": 1}, "key"),
        ({"scope": "user", "key": "-3", "max_requests": 1}, "key"),
        ({"scope": "global", "key": "1.2.3.4", "max_requests": 1}, "key"),
        ({"scope": "ip", "key": "*", "max_requests": 0}, "max_requests"),
        ({"scope": "ip", "key": "*", "max_requests": -5}, "max_requests"),
        ({"scope": "ip", "key": "*", "max_requests": 5, "window_seconds": 0}, "window_seconds"),
        ({"scope": "ip", "key": "*", "max_requests": 5, "window_seconds": -60}, "window_seconds"),
        ({"scope": "ip", "key": "*", "max_requests": "many"}, "max_requests"),
    ],
)
def test_create_rule_validation_errors(operator, body, field):
    response = operator.post(RULES, body, format="json")

    assert response.status_code == 400
    assert response.data["status_code"] == 400
    assert field in response.data["errors"]
    assert not RateLimitRule.objects.exists()
    assert not SystemLog.objects.filter(category="ratelimits").exists()


def test_create_duplicate_rule_is_400(operator, make_rule):
    make_rule(scope="ip", key="192.168.1.1", max_requests=5)

    response = operator.post(
        RULES, {"scope": "ip", "key": "192.168.1.1", "max_requests": 100}, format="json"
    )

    assert response.status_code == 400
    assert "key" in response.data["errors"]
    assert RateLimitRule.objects.count() == 1


def test_list_rules_with_filters(viewer, make_rule):
    make_rule(scope="ip", key="*")
    make_rule(scope="path", key="/system/exports", enabled=False)
    make_rule(scope="global", key="*")

    everything = viewer.get(RULES)
    paths = viewer.get(RULES, {"scope": "path"})
    disabled = viewer.get(RULES + "/", {"enabled": "false"})
    by_key = viewer.get(RULES, {"key": "/system/exports"})

    assert everything.status_code == 200
    assert everything.data["count"] == 3
    assert [r["key"] for r in paths.data["results"]] == ["/system/exports"]
    assert [r["scope"] for r in disabled.data["results"]] == ["path"]
    assert by_key.data["count"] == 1


def test_retrieve_rule_and_unknown_id(viewer, make_rule):
    rule = make_rule(scope="ip", key="*")

    found = viewer.get(f"{RULES}/{rule.pk}")
    missing = viewer.get(f"{RULES}/999999/")

    assert found.status_code == 200
    assert found.data["key"] == "*"
    assert missing.status_code == 404
    assert missing.data["status_code"] == 404


def test_put_replaces_rule(operator, make_rule):
    rule = make_rule(scope="ip", key="*", max_requests=5, window_seconds=10, description="x")

    response = operator.put(
        f"{RULES}/{rule.pk}", {"scope": "path", "key": "/system", "max_requests": 7}, format="json"
    )

    assert response.status_code == 200, response.content
    rule.refresh_from_db()
    assert (rule.scope, rule.key, rule.max_requests) == ("path", "/system", 7)
    assert rule.window_seconds == 60
    assert rule.description == ""
    log = SystemLog.objects.get(action="ratelimits.update_rule")
    assert log.before is not None
    assert log.after is not None
    assert log.before["scope"] == "ip"
    assert log.after["scope"] == "path"


def test_put_needs_every_field(operator, make_rule):
    rule = make_rule(scope="ip", key="*")

    response = operator.put(f"{RULES}/{rule.pk}/", {"max_requests": 7}, format="json")

    assert response.status_code == 400
    assert {"scope", "key"} <= set(response.data["errors"])


def test_patch_changes_some_fields(operator, make_rule):
    rule = make_rule(scope="ip", key="10.0.0.1", max_requests=5)

    response = operator.patch(
        f"{RULES}/{rule.pk}/", {"enabled": False, "max_requests": 9}, format="json"
    )

    assert response.status_code == 200
    rule.refresh_from_db()
    assert rule.enabled is False
    assert rule.max_requests == 9
    assert rule.key == "10.0.0.1"
    assert SystemLog.objects.filter(action="ratelimits.update_rule").count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"key": "not-an-ip"}, "key"),
        ({"scope": "global"}, "key"),
        ({"max_requests": 0}, "max_requests"),
        ({"window_seconds": -1}, "window_seconds"),
        ({"scope": "nope"}, "scope"),
    ],
)
def test_patch_validation_errors(operator, make_rule, body, field):
    rule = make_rule(scope="ip", key="10.0.0.1", max_requests=5)

    response = operator.patch(f"{RULES}/{rule.pk}", body, format="json")

    assert response.status_code == 400
    assert field in response.data["errors"]
    rule.refresh_from_db()
    assert (rule.scope, rule.key, rule.max_requests, rule.window_seconds) == (
        "ip",
        "10.0.0.1",
        5,
        60,
    )


def test_patch_unknown_rule_is_404(operator):
    response = operator.patch(f"{RULES}/424242", {"enabled": False}, format="json")

    assert response.status_code == 404


def test_delete_rule(operator, make_rule):
    rule = make_rule(scope="ip", key="*")

    response = operator.delete(f"{RULES}/{rule.pk}")

    assert response.status_code == 204
    assert not RateLimitRule.objects.filter(pk=rule.pk).exists()
    log = SystemLog.objects.get(action="ratelimits.delete_rule")
    assert log.before is not None
    assert log.before["key"] == "*"
    assert log.target_id == str(rule.pk)


def test_delete_unknown_rule_is_404(operator):
    assert operator.delete(f"{RULES}/424242/").status_code == 404


@pytest.mark.parametrize("path", [RULES, SNAPSHOTS])
def test_anonymous_is_401(api_client, path):
    response = api_client.get(path)

    assert response.status_code == 401
    assert response.data["status_code"] == 401


def test_anonymous_cannot_create(api_client):
    response = api_client.post(RULES, {"scope": "ip", "key": "*", "max_requests": 1}, format="json")

    assert response.status_code == 401
    assert not RateLimitRule.objects.exists()


def test_viewer_reads_but_cannot_write(viewer, make_rule):
    rule = make_rule(scope="ip", key="*")

    listed = viewer.get(RULES)
    created = viewer.post(RULES, {"scope": "global", "key": "*", "max_requests": 1}, format="json")
    patched = viewer.patch(f"{RULES}/{rule.pk}", {"enabled": False}, format="json")
    put = viewer.put(
        f"{RULES}/{rule.pk}", {"scope": "ip", "key": "*", "max_requests": 2}, format="json"
    )
    deleted = viewer.delete(f"{RULES}/{rule.pk}")

    assert listed.status_code == 200
    assert [created.status_code, patched.status_code, put.status_code, deleted.status_code] == [
        403,
        403,
        403,
        403,
    ]
    rule.refresh_from_db()
    assert rule.enabled is True
    assert RateLimitRule.objects.count() == 1


def test_client_in_no_group_is_403(nobody):
    assert nobody.get(RULES).status_code == 403
    assert nobody.get(SNAPSHOTS).status_code == 403


def test_snapshots_are_read_only(operator):
    snapshot = make_snapshot()

    created = operator.post(SNAPSHOTS, {"scope": "ip"}, format="json")
    deleted = operator.delete(f"{SNAPSHOTS}/{snapshot.pk}")

    assert created.status_code in {403, 405}  # nobody holds add/delete on snapshots
    assert deleted.status_code in {403, 405}
    assert RateLimitSnapshot.objects.count() == 1


def test_snapshots_newest_first_with_default_page_of_200(viewer):
    RateLimitSnapshot.objects.bulk_create(
        [
            RateLimitSnapshot(
                scope="ip",
                key=f"192.0.2.{i % 250}",
                window_seconds=60,
                max_requests=10,
                current_count=11,
                window_started_at="2026-01-01T00:00:00Z",
            )
            for i in range(205)
        ]
    )
    newest = make_snapshot(key="203.0.113.9")

    first = viewer.get(SNAPSHOTS)
    second = viewer.get(SNAPSHOTS + "/", {"limit": 200, "offset": 200})

    assert first.status_code == 200
    assert first.data["count"] == 206
    assert len(first.data["results"]) == 200
    assert first.data["results"][0]["id"] == newest.pk
    assert len(second.data["results"]) == 6
    ids = [row["id"] for row in first.data["results"]]
    assert ids == sorted(ids, reverse=True)


def test_snapshots_filter_by_scope_and_key(viewer):
    make_snapshot(scope="ip", key="192.0.2.1")
    make_snapshot(scope="ip", key="192.0.2.2")
    make_snapshot(scope="path", key="/system")

    ips = viewer.get(SNAPSHOTS, {"scope": "ip"})
    one = viewer.get(SNAPSHOTS, {"scope": "ip", "key": "192.0.2.2"})

    assert ips.data["count"] == 2
    assert [row["key"] for row in one.data["results"]] == ["192.0.2.2"]


def test_snapshot_detail_and_unknown_id(viewer):
    snapshot = make_snapshot()

    found = viewer.get(f"{SNAPSHOTS}/{snapshot.pk}")
    missing = viewer.get(f"{SNAPSHOTS}/999999")

    assert found.data["current_count"] == 11
    assert missing.status_code == 404


def test_snapshots_filter_exceeded(viewer):
    over = make_snapshot(current_count=11, max_requests=10)
    make_snapshot(current_count=3, max_requests=10)

    response = viewer.get(SNAPSHOTS, {"exceeded": "true"})
    under = viewer.get(SNAPSHOTS, {"exceeded": "false"})

    assert [row["id"] for row in response.data["results"]] == [over.pk]
    assert under.data["count"] == 1

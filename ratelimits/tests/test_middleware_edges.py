"""The middleware's edges: store failures, exemptions, settings, and the rule cache."""

import pytest
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpResponse
from django.test import RequestFactory

from ratelimits import ruleset
from ratelimits.middleware import RateLimitMiddleware
from ratelimits.tests.helpers import URL, get, statuses
from valhalla_ops import metrics

pytestmark = pytest.mark.django_db


def store_errors() -> float:
    return metrics.ratelimit_store_errors._value.get()


def decisions(outcome: str) -> float:
    return metrics.ratelimit_decisions.labels(outcome)._value.get()


def test_redis_down_fails_open_with_a_metric(api_client, make_rule, redis_down, caplog):
    make_rule(scope="global", key="*", max_requests=1)
    errors_before, error_decisions = store_errors(), decisions("error")

    codes = statuses(api_client, 4)

    assert codes == [401, 401, 401, 401]
    assert store_errors() - errors_before == 4
    assert decisions("error") - error_decisions == 4
    warnings = [r for r in caplog.records if "store unreachable" in r.getMessage()]
    assert len(warnings) <= 1  # throttled, not one line per request


def test_redis_down_fails_closed_when_configured(api_client, make_rule, redis_down, settings):
    settings.RATELIMIT_FAIL_OPEN = False
    make_rule(scope="global", key="*", max_requests=100)

    response = get(api_client)

    assert response.status_code == 503
    assert response.json()["status_code"] == 503
    assert "unavailable" in response.json()["detail"]
    assert response["Retry-After"] == "1"


def test_decisions_are_counted(api_client, make_rule):
    make_rule(scope="global", key="*", max_requests=1)
    allowed, limited = decisions("allowed"), decisions("limited")

    statuses(api_client, 3)

    assert decisions("allowed") - allowed == 1
    assert decisions("limited") - limited == 2


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_health_and_metrics_are_exempt(api_client, make_rule, path):
    make_rule(scope="global", key="*", max_requests=1)

    responses = [get(api_client, path=path) for _ in range(3)]

    assert all(r.status_code != 429 and "RateLimit" not in r for r in responses)


def test_exempt_paths_setting(api_client, make_rule, settings):
    settings.RATELIMIT_EXEMPT_PATHS = ["/system/ratelimits/"]
    make_rule(scope="global", key="*", max_requests=1)

    exempt = statuses(api_client, 3)
    counted = statuses(api_client, 2, path="/system/clients/")

    assert exempt == [401, 401, 401]
    assert counted == [401, 429]


def test_disabled_by_setting(settings):
    settings.RATELIMIT_ENABLED = False

    with pytest.raises(MiddlewareNotUsed):
        RateLimitMiddleware(lambda request: HttpResponse())


def test_rule_change_takes_effect_on_commit(
    api_client, make_rule, django_capture_on_commit_callbacks
):
    from ratelimits import services
    from valhalla_ops.principals import SYSTEM

    rule = make_rule(scope="global", key="*", max_requests=1)
    assert statuses(api_client, 2) == [401, 429]

    with django_capture_on_commit_callbacks(execute=True):
        services.update_rule(actor=SYSTEM, rule=rule, max_requests=5)

    assert statuses(api_client, 1) == [401]


def test_no_query_per_request_with_warm_caches(
    viewer, make_rule, django_assert_num_queries, settings
):
    # The caches must not expire between the two requests on a slow machine.
    settings.RATELIMIT_RULES_CACHE_SECONDS = 60
    settings.API_KEY_CACHE_SECONDS = 60
    make_rule(scope="api_key", key=str(viewer.api_client.pk), max_requests=100)
    make_rule(scope="ip", key="*", max_requests=100)
    key = viewer._credentials["HTTP_X_API_KEY"]
    middleware = RateLimitMiddleware(lambda request: HttpResponse("ok"))
    factory = RequestFactory()

    def request():
        req = factory.get(URL, HTTP_X_API_KEY=key, REMOTE_ADDR="192.0.2.5")
        req.client_ip = "192.0.2.5"  # type: ignore[attr-defined]  # as RequestContextMiddleware sets it
        return middleware(req)

    request()  # warms the rule set and the key lookup
    with django_assert_num_queries(0):
        response = request()

    assert response["RateLimit"].startswith("limit=100, remaining=98, ")


def test_rules_shared_through_the_generation_token(settings, make_rule, django_assert_num_queries):
    from django.core.cache import cache

    from ratelimits.models import RateLimitRule

    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # shared mode; counters are not touched here
    settings.RATELIMIT_RULES_CACHE_SECONDS = 0
    make_rule(scope="ip", key="*", max_requests=1)
    assert len(ruleset.current_rules().rules) == 1
    RateLimitRule.objects.create(scope="global", key="*", max_requests=1)  # "another process"

    with django_assert_num_queries(0):
        unchanged = ruleset.current_rules()  # token unchanged: no reload
    cache.set(ruleset.GENERATION_KEY, "bumped elsewhere")
    reloaded = ruleset.current_rules()

    assert len(unchanged.rules) == 1
    assert len(reloaded.rules) == 2


def test_a_key_is_resolved_once_per_request_for_the_limiter_and_authentication(
    viewer, make_rule, monkeypatch
):
    from clients import keys

    make_rule(scope="api_key", key=str(viewer.api_client.pk), max_requests=100)
    hashed: list[str] = []
    original = keys.hash_key

    def counting(raw_key: str) -> str:
        hashed.append(raw_key)
        return original(raw_key)

    monkeypatch.setattr(keys, "hash_key", counting)

    response = viewer.get("/system/clients/")

    assert response.status_code == 200
    assert response["RateLimit"].startswith("limit=100, remaining=99, ")
    assert len(hashed) == 1

"""The seed's metrics: rate-limit rules, API clients by state, and responses by status and view."""

import socket
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from ratelimits import ruleset, store
from ratelimits.services import create_rule
from ratelimits.views import RateLimitRuleViewSet
from valhalla_ops import metrics, registry
from valhalla_ops.principals import SYSTEM

pytestmark = pytest.mark.django_db

RULES = "/system/ratelimits/rules"
RULES_VIEW = "ratelimitrule-list"


def scrape(client: Client) -> dict[tuple[str, frozenset], float]:
    """Every sample of a /metrics scrape, by name and labels."""
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def responses(method: str, status: str, view: str) -> float:
    labels = {"method": method, "status": status, "view": view}
    return metrics.registry.get_sample_value("valhalla_http_responses_total", labels) or 0.0


def failing(*args: object, **kwargs: object) -> None:
    raise RuntimeError("the rules table is gone")


@pytest.fixture
def ratelimit_store_down(settings):
    """A rule on every request, a counter store nobody answers on, and rate limits failing closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    settings.RATELIMIT_FAIL_OPEN = False
    store.reset_store()
    create_rule(actor=SYSTEM, scope="global", key="*", max_requests=100)
    ruleset.invalidate()  # what the service's on_commit hook does
    yield
    ruleset.invalidate()
    store.reset_store()


def test_ratelimit_rules_gauge_counts_enabled_and_disabled_rules(client):
    create_rule(actor=SYSTEM, scope="ip", key="192.0.2.1", max_requests=5)
    create_rule(actor=SYSTEM, scope="path", key="/system/exports", max_requests=5)
    create_rule(actor=SYSTEM, scope="ip", key="192.0.2.2", max_requests=5, enabled=False)

    found = scrape(client)

    assert found[("valhalla_ratelimit_rules", frozenset({("enabled", "true")}))] == 2
    assert found[("valhalla_ratelimit_rules", frozenset({("enabled", "false")}))] == 1


def test_api_clients_gauge_counts_each_state_once(client, make_api_client):
    now = timezone.now()
    make_api_client()
    make_api_client(expires_at=now + timedelta(days=1))
    make_api_client(expires_at=now - timedelta(days=1))
    make_api_client(active=False)
    make_api_client(active=False, expires_at=now - timedelta(days=1))

    found = scrape(client)

    def state(name: str) -> float:
        return found[("valhalla_api_clients", frozenset({("state", name)}))]

    assert (state("active"), state("inactive"), state("expired")) == (2, 2, 1)


def test_gauges_read_one_query_each(client, make_api_client, django_assert_num_queries):
    make_api_client()
    rules = registry.gauges.get("ratelimit_rules")
    clients = registry.gauges.get("api_clients")
    assert rules is not None
    assert clients is not None

    with django_assert_num_queries(2):
        rule_samples, client_samples = rules.collect(), clients.collect()

    assert rule_samples == [(("true",), 0.0), (("false",), 0.0)]
    assert client_samples == [(("active",), 1.0), (("inactive",), 0.0), (("expired",), 0.0)]


def test_responses_are_counted_by_method_status_class_and_view(viewer, monkeypatch):
    anonymous = Client()
    before = {
        "200": responses("GET", "2xx", RULES_VIEW),
        "401": responses("GET", "4xx", RULES_VIEW),
        "404": responses("GET", "4xx", "unmatched"),
        "500": responses("GET", "5xx", RULES_VIEW),
    }

    ok = viewer.get(RULES)
    refused = anonymous.get(RULES)
    missing = viewer.get("/no/such/page")
    monkeypatch.setattr(RateLimitRuleViewSet, "list", failing)
    viewer.raise_request_exception = False
    broken = viewer.get(RULES)

    assert [ok.status_code, refused.status_code, missing.status_code, broken.status_code] == [
        200,
        401,
        404,
        500,
    ]
    assert responses("GET", "2xx", RULES_VIEW) == before["200"] + 1
    assert responses("GET", "4xx", RULES_VIEW) == before["401"] + 1
    assert responses("GET", "4xx", "unmatched") == before["404"] + 1
    assert responses("GET", "5xx", RULES_VIEW) == before["500"] + 1


def test_a_500_is_counted_when_the_exception_propagates(viewer, monkeypatch, settings):
    settings.DEBUG_PROPAGATE_EXCEPTIONS = True  # Django then makes no 500 response
    monkeypatch.setattr(RateLimitRuleViewSet, "list", failing)
    before = responses("GET", "5xx", RULES_VIEW)

    with pytest.raises(RuntimeError, match="the rules table is gone"):
        viewer.get(RULES)

    assert responses("GET", "5xx", RULES_VIEW) == before + 1


def test_a_response_from_a_middleware_is_counted_under_its_view(client, ratelimit_store_down):
    before = responses("GET", "5xx", RULES_VIEW)
    unmatched = responses("GET", "5xx", "unmatched")

    response = client.get(RULES)  # refused by the rate limiter, before URL resolution

    assert response.status_code == 503
    assert responses("GET", "5xx", RULES_VIEW) == before + 1
    assert responses("GET", "5xx", "unmatched") == unmatched


def test_unknown_methods_share_one_label(client):
    before = responses("other", "4xx", "healthz")

    response = client.generic("BREW", "/healthz")

    assert response.status_code == 405
    assert responses("other", "4xx", "healthz") == before + 1
    assert responses("BREW", "4xx", "healthz") == 0


def test_counting_costs_no_query(client, settings, django_assert_num_queries):
    settings.MAINTENANCE_STATE_CACHE_SECONDS = 60
    settings.RATELIMIT_RULES_CACHE_SECONDS = 60
    client.get("/no/such/page")  # warms the other middlewares' caches (/healthz skips some)
    before = responses("GET", "2xx", "healthz"), responses("GET", "4xx", "unmatched")

    with django_assert_num_queries(0):
        client.get("/healthz")
        client.get("/no/such/page")

    after = responses("GET", "2xx", "healthz"), responses("GET", "4xx", "unmatched")
    assert after == (before[0] + 1, before[1] + 1)


def test_a_scrape_shows_every_seed_metric(client, make_api_client):
    make_api_client()
    client.get("/healthz")

    response = client.get("/metrics")

    families = {
        family.name: family.type
        for family in text_string_to_metric_families(response.content.decode())
    }
    assert families["valhalla_ratelimit_rules"] == "gauge"
    assert families["valhalla_api_clients"] == "gauge"
    assert families["valhalla_http_responses"] == "counter"
    assert families["valhalla_admin_ops"] == "counter"
    text = response.content.decode()
    assert 'valhalla_api_clients{state="active"} 1.0' in text
    assert 'valhalla_http_responses_total{method="GET",status="2xx",view="healthz"}' in text

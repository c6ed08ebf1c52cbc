"""Liveness, readiness and metrics endpoints (plain Django views, no DRF on this path)."""

import ipaddress
import logging

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from valhalla_ops import registry
from valhalla_ops.exceptions import safe_methods_only
from valhalla_ops.metrics import scrape_registry
from valhalla_ops.net import client_ip

logger = logging.getLogger(__name__)


@never_cache
@csrf_exempt  # reads only; a POST gets the 405 below, not a CSRF 403
@safe_methods_only
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive; touches nothing else."""
    return JsonResponse({"status": "ok"})


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_cache() -> None:
    cache.set("readyz", "1", 5)
    if cache.get("readyz") != "1":
        raise RuntimeError("cache did not return the value it was given")


@never_cache
@csrf_exempt  # reads only; a POST gets the 405 below, not a CSRF 403
@safe_methods_only
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready to serve: the database, the cache and every registered check answer."""
    checks = {
        "database": check_database,
        "cache": check_cache,
        **dict(registry.readiness_checks.items()),
    }
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            check()
            results[name] = "ok"
        except Exception as error:  # any failure means not ready; name the part
            logger.warning("readiness check %s failed: %s", name, error)
            results[name] = f"failed: {type(error).__name__}"
    failing = [name for name, result in results.items() if result != "ok"]
    body: dict[str, object] = {"status": "ok" if not failing else "unavailable", "checks": results}
    if failing:
        body["failing"] = failing
    return JsonResponse(body, status=503 if failing else 200)


def _metrics_allowed(request: HttpRequest) -> bool:
    if request.user.is_authenticated and request.user.is_staff:
        return True
    # The client's address as found through TRUSTED_PROXIES (a forged X-Forwarded-For from an
    # untrusted peer changes nothing), as for rate limits, the audit log and the logs.
    address = client_ip(request) or ""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(
        ip in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOWED_IPS
    )


@never_cache
@csrf_exempt  # reads only; a POST gets the 405 below, not a CSRF 403
@safe_methods_only
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format, for staff or the allowed IP list (every process's counters)."""
    if not _metrics_allowed(request):
        return JsonResponse(
            {"status_code": 403, "detail": "Metrics are for staff or allowed IPs."}, status=403
        )
    return HttpResponse(generate_latest(scrape_registry()), content_type=CONTENT_TYPE_LATEST)

"""The API's own OpenAPI schema as test parameters, and one real resource behind every path.

Tests that must hold for every operation (permissions, hostile input) take their cases from
the schema, so an endpoint added later is covered without being listed by hand.
"""

import re
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from typing import Any

import pytest
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from ratelimits.models import RateLimitRule, RateLimitSnapshot

METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    body_schema: dict[str, Any] | None = field(default=None, hash=False, compare=False)

    @property
    def id(self) -> str:
        return f"{self.method.upper()} {self.path}"


@cache
def schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    name = ref.rsplit("/", 1)[-1]
    return schema()["components"]["schemas"][name]


def operations() -> list[Operation]:
    found = []
    for path, item in schema()["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            content = op.get("requestBody", {}).get("content", {})
            body = content.get("application/json", {}).get("schema")
            found.append(Operation(method, path, resolve(body) if body else None))
    return found


def paths() -> list[str]:
    return list(schema()["paths"])


def methods_of(path: str) -> set[str]:
    return {method for method in METHODS if method in schema()["paths"][path]}


@pytest.fixture
def resources(db) -> dict[str, str]:
    """{"/system/clients/{id}/": "/system/clients/7/", ...}: a real object behind each path."""
    admin = admin_caller()
    ids = {
        "clients": _create(admin, "/system/clients/", {"name": "target", "client_type": "service"}),
        "ratelimits/rules": _create(
            admin, "/system/ratelimits/rules", {"scope": "ip", "key": "10.9.9.9", "max_requests": 5}
        ),
        "maintenance/windows": _create(
            admin,
            "/system/maintenance/windows",
            {
                "starts_at": (timezone.now() + timedelta(days=1)).isoformat(),
                "ends_at": (timezone.now() + timedelta(days=2)).isoformat(),
            },
        ),
        "exports": _create(
            admin, "/system/exports/", {"job_type": "audit_log_export", "filter_params": {}}
        ),
    }
    ids["notify/channels"] = _create(
        admin,
        "/system/notify/channels",
        {"name": "ops-mail", "channel_type": "email", "target": "ops@example.com"},
    )
    ids["notify"] = _create(
        admin, "/system/notify/", {"channel_id": ids["notify/channels"], "subject": "hello"}
    )
    ids["ratelimits/snapshots"] = RateLimitSnapshot.objects.create(
        scope=RateLimitRule.Scope.IP,
        key="10.9.9.9",
        window_seconds=60,
        max_requests=5,
        current_count=1,
        window_started_at=timezone.now(),
    ).pk
    ids["logs"] = admin.get("/system/logs/").json()["results"][0]["id"]
    return {path: concrete(path, ids) for path in paths()}


def concrete(path: str, ids: dict[str, Any]) -> str:
    if "{category}" in path:
        return path.replace("{category}", "audit_logs")
    if "{mode}" in path:
        return path.replace("{mode}", "no-such-mode")
    if "{id}" not in path:
        return path
    resource = re.match(r"^/system/(.+?)/\{id\}", path)
    assert resource, path
    return path.replace("{id}", str(ids[resource.group(1)]))


def admin_caller(name: str = "schema-admin") -> APIClient:
    """An APIClient with the key of a new ops-admin client."""
    from django.contrib.auth.models import Group

    from clients import services
    from valhalla_ops.principals import SYSTEM

    _client, key = services.create_client(
        actor=SYSTEM,
        name=name,
        client_type="test",
        groups=list(Group.objects.filter(name="ops-admin")),
    )
    caller = APIClient()
    caller.credentials(HTTP_X_API_KEY=key)
    return caller


def _create(caller: APIClient, path: str, body: dict[str, Any]) -> int:
    response = caller.post(path, body, format="json")
    assert response.status_code == 201, (path, response.content)
    return response.json()["id"]

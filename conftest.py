"""Project-wide fixtures: API callers with keys, staff users, and real services."""

import os

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from ratelimits import ruleset, store

pytest_plugins = [
    "valhalla_ops.tests.services",
    "valhalla_ops.tests.api_schema",
    "clients.tests.fixtures",
    "maintenance.tests.fixtures",
]


@pytest.fixture(autouse=True)
def _no_rate_limit_state_between_tests():
    """No test sees the rules or counters another test left in this process."""
    ruleset._loaded = None
    store.reset_store()
    yield
    ruleset._loaded = None
    store.reset_store()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def staff_user(db, django_user_model):
    """A staff member in ops-admin (no password: hashing one costs half a second)."""
    user = django_user_model.objects.create(username="staff", is_staff=True)
    user.groups.add(Group.objects.get(name="ops-admin"))
    return user


@pytest.fixture
def superuser(db, django_user_model):
    return django_user_model.objects.create(username="root", is_staff=True, is_superuser=True)


def pytest_report_header(config: pytest.Config) -> str:
    database = (
        "PostgreSQL" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "SQLite"
    )
    redis = os.environ.get("REDIS_URL") or "local memory"
    return f"valhalla-ops: database {database}, cache {redis}, CI={os.environ.get('CI', 'false')}"

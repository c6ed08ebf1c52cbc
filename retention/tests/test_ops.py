"""The retention_preview admin ops action: what a purge would delete now, deleting nothing."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from retention.models import PurgeRun
from valhalla_ops.models import SystemLog

pytestmark = pytest.mark.django_db

LONG_AGO = datetime(2024, 1, 1, 12, tzinfo=UTC)
NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def old_logs(count: int) -> None:
    with time_machine.travel(LONG_AGO, tick=False):
        SystemLog.objects.bulk_create(
            SystemLog(category="old", action="old.row", message="old") for _ in range(count)
        )


def preview(caller, **params) -> dict:
    response = caller.post(
        "/admin/ops/", {"action": "retention_preview", "params": params}, format="json"
    )
    assert response.status_code == 200, response.json()
    return response.json()["data"]


def test_preview_counts_per_category_and_deletes_nothing(clock, viewer, make_policy):
    old_logs(4)
    make_policy("audit_logs", 30)
    make_policy("ratelimit_snapshots", 7, enabled=False)

    data = preview(viewer)

    rows = {row["category"]: row for row in data["categories"]}
    assert data["purges_allowed"] is True
    assert rows["audit_logs"] == {
        "category": "audit_logs",
        "policy": {"days_to_keep": 30, "enabled": True},
        "cutoff": (NOW - timedelta(days=30)).isoformat(),
        "would_delete": 4,
    }
    assert rows["ratelimit_snapshots"]["would_delete"] == 0  # disabled: a purge skips it
    assert rows["notifications"] == {
        "category": "notifications",
        "policy": None,
        "cutoff": None,
        "would_delete": 0,
    }
    assert SystemLog.objects.filter(action="old.row").count() == 4
    assert not PurgeRun.objects.exists()


def test_preview_of_one_category(clock, viewer, make_policy):
    old_logs(2)
    make_policy("audit_logs", 30)

    data = preview(viewer, category="audit_logs")

    assert [row["category"] for row in data["categories"]] == ["audit_logs"]
    assert data["categories"][0]["would_delete"] == 2


def test_preview_of_an_unknown_category_is_a_400(viewer):
    response = viewer.post(
        "/admin/ops/",
        {"action": "retention_preview", "params": {"category": "nope"}},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["error"].startswith("category: Unknown category 'nope'.")


def test_preview_says_when_purges_are_paused(clock, viewer, set_maintenance_mode):
    set_maintenance_mode("read_only")

    assert preview(viewer)["purges_allowed"] is False

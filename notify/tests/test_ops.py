"""The retry_failed_notifications admin ops action: by channel and by age, with a count."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from notify.models import NotificationOutbox
from valhalla_ops.models import SystemLog

pytestmark = pytest.mark.django_db

FAILED = NotificationOutbox.Status.FAILED
PENDING = NotificationOutbox.Status.PENDING


@pytest.fixture
def failed(make_notification):
    """failed(channel, hours_ago=0) -> a notification that failed that long ago."""

    def make(channel, *, hours_ago: float = 0) -> NotificationOutbox:
        with time_machine.travel(timezone.now() - timedelta(hours=hours_ago), tick=False):
            return make_notification(channel, status=FAILED, attempts=8, last_error="HTTP 500")

    return make


def retry(caller, **params):
    return caller.post(
        "/admin/ops/", {"action": "retry_failed_notifications", "params": params}, format="json"
    )


def statuses(*rows: NotificationOutbox) -> list[str]:
    for row in rows:
        row.refresh_from_db()
    return [row.status for row in rows]


def test_retry_by_channel_and_age_with_a_count(ops_admin, make_channel, failed):
    hooks, mail = make_channel(), make_channel()
    recent, old, other = failed(hooks, hours_ago=1), failed(hooks, hours_ago=30), failed(mail)

    response = retry(ops_admin, channel=hooks.pk, failed_within_hours=2)

    assert response.status_code == 200
    assert response.json()["data"] == {
        "matched": 1,
        "retried": 1,
        "ids": [recent.pk],
        "dry_run": False,
    }
    assert statuses(recent, old, other) == [PENDING, FAILED, FAILED]
    recent.refresh_from_db()
    assert recent.attempts == 0
    assert SystemLog.objects.filter(action="notify.retry", target_id=str(recent.pk)).count() == 1


def test_retry_without_filters_takes_every_failed_one_up_to_the_limit(
    ops_admin, make_channel, failed
):
    channel = make_channel()
    rows = [failed(channel) for _ in range(3)]

    data = retry(ops_admin, limit=2).json()["data"]

    assert (data["matched"], data["retried"]) == (3, 2)
    assert statuses(*rows) == [PENDING, PENDING, FAILED]


def test_a_dry_run_counts_and_retries_nothing(ops_admin, make_channel, failed):
    row = failed(make_channel())

    data = retry(ops_admin, dry_run=True).json()["data"]

    assert data == {"matched": 1, "retried": 0, "ids": [row.pk], "dry_run": True}
    assert statuses(row) == [FAILED]
    assert not SystemLog.objects.filter(action="notify.retry").exists()


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"channel": 999999}, 'channel: Invalid pk "999999" - object does not exist.'),
        ({"failed_within_hours": 0}, "failed_within_hours: Ensure this value is greater than"),
        ({"limit": 100000}, "limit: Ensure this value is less than or equal to 10000."),
    ],
)
def test_bad_params_are_a_400(ops_admin, params, error):
    response = retry(ops_admin, **params)

    assert response.status_code == 400
    assert response.json()["error"].startswith(error)


def test_an_operator_may_not_retry_in_bulk(operator):
    assert retry(operator).status_code == 403

import pytest

from retention import modes
from retention.models import DataRetentionPolicy
from valhalla_ops import worker


@pytest.fixture(autouse=True)
def _purges_not_paused_before():
    """The purger logs a pause once; start every test from "last seen: normal"."""
    modes._last_logged[0] = modes.NORMAL


@pytest.fixture
def make_policy(db):
    """make(category, days_to_keep=30, **fields) -> a policy, straight into the table."""

    def make(category: str = "audit_logs", days_to_keep: int = 30, **fields) -> DataRetentionPolicy:
        return DataRetentionPolicy.objects.create(
            category=category, days_to_keep=days_to_keep, **fields
        )

    return make


@pytest.fixture(autouse=True)
def _no_stop_request_left_over():
    """A worker stopped by an earlier test leaves its stop flag set until the next run()."""
    worker._stop_requested.clear()
    yield
    worker._stop_requested.clear()

"""Several threads at once on PostgreSQL: one row, every change audited in order, one start."""

import itertools
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from django.db import connection
from django.utils import timezone

from maintenance import services, state, worker
from maintenance import shared as redis_state
from maintenance.models import MaintenanceState, MaintenanceWindow
from valhalla_ops.models import SystemLog
from valhalla_ops.principals import SYSTEM

pytestmark = pytest.mark.django_db(transaction=True)

MODES = ["read_only", "maintenance", "normal"]
T = TypeVar("T")


def run_together(count: int, work: Callable[[int], T]) -> list[T]:
    """Run work(i) in `count` threads released at the same moment; re-raise any error."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count  # slot i holds work(i) once thread i is done
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    return results


@pytest.mark.parametrize("shared", ["no-redis", "redis"])
def test_concurrent_mode_changes_leave_one_row_and_a_consistent_history(postgres, request, shared):
    if shared == "redis":
        request.getfixturevalue("shared_redis")
    calls = 12

    run_together(
        calls,
        lambda i: services.set_mode(actor=SYSTEM, mode=MODES[i % 3], reason=f"call {i}"),
    )

    assert MaintenanceState.objects.count() == 1
    logs = list(SystemLog.objects.filter(action="maintenance.set_mode").order_by("id"))
    assert len(logs) == calls
    assert logs[0].before is not None
    assert logs[0].before["reason"] == ""
    for previous, current in itertools.pairwise(logs):
        assert current.before == previous.after  # each change saw the one committed before it
    final = MaintenanceState.objects.get()
    assert services.state_snapshot(final) == logs[-1].after
    assert state.current_state().reason == final.reason  # the last publish won locally
    if shared == "redis":
        stored = redis_state.read()
        assert stored is not None
        assert stored["reason"] == final.reason


def test_concurrent_workers_start_and_end_a_window_exactly_once(postgres, settings):
    settings.MAINTENANCE_ALERT_AFTER = 0
    now = timezone.now()
    window = services.create_window(
        actor=SYSTEM, starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(hours=1)
    )

    starts = run_together(6, lambda i: worker.run_windows())
    MaintenanceWindow.objects.filter(pk=window.pk).update(ends_at=timezone.now())
    ends = run_together(6, lambda i: worker.run_windows())

    assert (sum(starts), sum(ends)) == (1, 1)
    changes = SystemLog.objects.filter(action="maintenance.set_mode").order_by("id")
    assert [log.context["event"] for log in changes] == ["window_start", "window_end"]
    assert MaintenanceState.objects.get().mode == "normal"

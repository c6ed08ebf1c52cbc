"""Purge runs at database speed and safe with many workers: time-sized batches, one claim per
category, "purge now" scheduled for the worker, interrupted runs resumed, cascades counted."""

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from django.conf import settings as django_settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from retention import batches, purger
from retention.models import PurgeRun
from valhalla_ops import registry, worker
from valhalla_ops.models import SystemLog
from valhalla_ops.principals import SYSTEM
from valhalla_ops.registry import RetentionCategory
from valhalla_ops.tests.services import postgres_url

pytestmark = pytest.mark.django_db

LONG_AGO = datetime(2024, 1, 1, 12, tzinfo=UTC)
NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
BASE_DIR = Path(django_settings.BASE_DIR)


def old_logs(count: int, *, when: datetime = LONG_AGO) -> list[int]:
    with time_machine.travel(when, tick=False):
        rows = SystemLog.objects.bulk_create(
            SystemLog(category="old", action="old.row", message="old") for _ in range(count)
        )
    return [row.pk for row in rows]


def remaining_old() -> int:
    return SystemLog.objects.filter(action="old.row").count()


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


# --- batches sized by time --------------------------------------------------------------


def test_batch_sizer_grows_while_cheap_and_shrinks_when_slow():
    sizer = batches.BatchSizer(size=1000, max_size=50_000, target=0.3)

    grown = [sizer.update(0.001) for _ in range(3)]
    steady = sizer.update(0.1)
    shrunk = sizer.update(1.0)
    halved = sizer.update(0.2)

    assert grown == [1500, 2250, 3375]  # at most half again each time
    assert steady == 3375  # at a third of the target: keep the size
    assert shrunk == 844  # ten times too slow: a quarter, no less
    assert halved == 422
    assert [sizer.update(0.0) for _ in range(20)][-1] == 50_000  # never past the cap


def test_purge_batches_follow_their_lock_time(clock, make_policy, settings, monkeypatch):
    settings.RETENTION_BATCH_SIZE = 10
    settings.RETENTION_BATCH_SECONDS = 0.3
    old_logs(200)
    policy = make_policy("audit_logs", 30)
    # cheap, cheap, slow, then just at the aim (a third of the target)
    seconds = itertools.chain([0.001, 0.001, 1.0], itertools.repeat(0.1))
    real = batches.run_batch

    def timed(rows, **kwargs):
        batch = real(rows, **kwargs)
        return batch and batches.Batch(batch.deleted, 0, batch.last_pk, next(seconds))

    monkeypatch.setattr(batches, "run_batch", timed)
    sizes: list[int] = []

    run = purger.purge_policy(policy=policy, actor=SYSTEM, progress=lambda r, n: sizes.append(n))

    assert sizes[:6] == [10, 15, 22, 6, 6, 6]
    assert sum(sizes) == run.deleted == 200
    assert remaining_old() == 0


def test_each_batch_is_one_delete_statement(clock, make_policy, django_assert_num_queries):
    old_logs(30)
    category = registry.retention_categories.get("audit_logs")
    assert category is not None
    rows = purger.expired_rows(category, NOW - timedelta(days=30))
    assert batches.can_fast_delete(rows)

    with django_assert_num_queries(1):
        batch = batches.fast_batch(rows, after=None, size=20)

    assert batch is not None
    assert batch.deleted == 20
    assert remaining_old() == 10
    with django_assert_num_queries(1):
        rest = batches.fast_batch(rows, after=batch.last_pk, size=20)
    assert rest is not None
    assert rest.deleted == 10
    assert batches.fast_batch(rows, after=rest.last_pk, size=20) is None


def test_batches_walk_the_keys_and_keep_protected_rows(clock, make_policy, settings):
    settings.RETENTION_BATCH_SIZE = 3
    settings.RETENTION_BATCH_MAX_SIZE = 3
    old = old_logs(10)
    keep = set(old[1::3])
    registry.retention_categories.register(
        "logs_but_some",
        RetentionCategory(
            name="logs_but_some",
            description="",
            queryset=SystemLog.objects.all,
            protected=lambda: SystemLog.objects.filter(pk__in=keep),
        ),
    )
    try:
        run = purger.purge_policy(policy=make_policy("logs_but_some", 30), actor=SYSTEM)
    finally:
        registry.retention_categories._entries.pop("logs_but_some")

    assert run.deleted == 10 - len(keep)
    assert set(SystemLog.objects.filter(action="old.row").values_list("pk", flat=True)) == keep
    assert run.last_pk == max(set(old) - keep)


# --- cascades -----------------------------------------------------------------------------


@pytest.fixture
def old_users_category():
    """Users who joined long ago: deleting one cascades to its group links and admin log."""
    category = RetentionCategory(
        name="old_users",
        description="",
        queryset=lambda: User.objects.filter(username__startswith="old-"),
        date_field="date_joined",
    )
    registry.retention_categories.register("old_users", category)
    yield category
    registry.retention_categories._entries.pop("old_users")


def test_cascaded_rows_are_counted(clock, make_policy, old_users_category, capsys):
    group = Group.objects.create(name="old-timers")
    for i in range(3):
        user = User.objects.create(username=f"old-{i}", date_joined=LONG_AGO)
        user.groups.add(group)
        LogEntry.objects.create(user=user, action_flag=1, object_repr="x", action_time=NOW)
    make_policy("old_users", 30)

    call_command("purge_expired", "--category", "old_users")

    run = PurgeRun.objects.get(category="old_users")
    assert (run.deleted, run.cascaded) == (3, 6)  # 3 group links and 3 admin log entries
    assert not LogEntry.objects.exists()
    assert "deleted 3 row(s) older than 2024-05-02 12:00 (and 6 cascaded row(s))" in (
        capsys.readouterr().out
    )
    audit = SystemLog.objects.get(action="retention.purge")
    assert audit.context["cascaded"] == 6


# --- one run per category -----------------------------------------------------------------


def test_the_database_refuses_a_second_active_run_per_category(make_policy):
    policy = make_policy("audit_logs", 30)
    purger.start_run(policy=policy, actor=SYSTEM, dry_run=False)

    with pytest.raises(purger.CategoryBusy):
        purger.start_run(policy=policy, actor=SYSTEM, dry_run=False)
    with pytest.raises(IntegrityError), transaction.atomic():
        PurgeRun.objects.create(
            category="audit_logs", status="scheduled", cutoff=NOW, started_at=NOW
        )
    # dry runs only count: they claim nothing
    purger.start_run(policy=policy, actor=SYSTEM, dry_run=True)


def test_command_skips_a_category_a_worker_holds(clock, make_policy, capsys):
    policy = make_policy("audit_logs", 30)
    old_logs(2)
    purger.start_run(policy=policy, actor=SYSTEM, dry_run=False)

    call_command("purge_expired", "--category", "audit_logs")

    assert "audit_logs: skipped: A purge of audit_logs is already" in capsys.readouterr().err
    assert remaining_old() == 2


@pytest.mark.django_db(transaction=True)
def test_two_workers_purging_one_category_one_skips(make_policy, settings, monkeypatch):
    settings.RETENTION_BATCH_SIZE = 5
    settings.RETENTION_BATCH_MAX_SIZE = 5
    make_policy("audit_logs", 30)
    old_logs(40, when=timezone.now() - timedelta(days=60))
    first_batch_done = threading.Event()
    other_worker_done = threading.Event()
    real = batches.run_batch

    def held(rows, **kwargs):
        batch = real(rows, **kwargs)
        if not first_batch_done.is_set():
            first_batch_done.set()  # the first worker is purging, between two batches...
            assert other_worker_done.wait(60)  # ...while the second worker runs its step
        return batch

    monkeypatch.setattr(batches, "run_batch", held)
    results: dict[str, int] = {}

    def first() -> None:
        try:
            results["first"] = purger.run_retention()
        finally:
            connection.close()

    def second() -> None:
        try:
            assert first_batch_done.wait(60)
            results["second"] = purger.run_retention()
        finally:
            other_worker_done.set()
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == {"first": 40, "second": 0}
    run = PurgeRun.objects.get()
    assert (run.status, run.deleted) == (PurgeRun.Status.COMPLETED, 40)
    assert remaining_old() == 0


@pytest.mark.django_db(transaction=True)
def test_workers_claiming_at_once_get_one_run_per_category(postgres, make_policy):
    make_policy("audit_logs", 30)
    make_policy("admin_log", 30)
    barrier = threading.Barrier(4, timeout=30)
    claimed: list[str] = []

    def claim() -> None:
        try:
            barrier.wait()
            run = purger.claim_next(actor=SYSTEM)
            if run is not None:
                claimed.append(run.category)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(claimed) == ["admin_log", "audit_logs"]
    assert PurgeRun.objects.filter(status="running").count() == 2


# --- purge now ----------------------------------------------------------------------------


def test_api_purge_now_schedules_a_run_and_returns_at_once(operator, make_policy, monkeypatch):
    make_policy("audit_logs", 30)
    old_logs(3, when=timezone.now() - timedelta(days=60))

    def no_purging_in_the_request(*args, **kwargs):
        raise AssertionError("the request purged")

    monkeypatch.setattr(purger, "execute_run", no_purging_in_the_request)
    response = operator.post("/system/retention/audit_logs/purge")
    again = operator.post("/system/retention/audit_logs/purge/")

    assert response.status_code == 202, response.data
    assert response.data["status"] == "scheduled"
    assert remaining_old() == 3
    assert again.status_code == 409
    assert "already scheduled or running" in str(again.data)
    assert SystemLog.objects.filter(action="retention.schedule").count() == 1
    monkeypatch.undo()

    assert purger.run_retention() == 3

    run = PurgeRun.objects.get(pk=response.data["id"])
    assert (run.status, run.deleted) == ("completed", 3)
    assert run.triggered_by == response.data["triggered_by"] != ""


def test_api_purge_now_errors(operator, viewer, make_policy):
    make_policy("audit_logs", 30, enabled=False)

    assert viewer.post("/system/retention/audit_logs/purge").status_code == 403
    assert operator.post("/system/retention/admin_log/purge").status_code == 404
    disabled = operator.post("/system/retention/audit_logs/purge")
    assert disabled.status_code == 400
    assert "disabled" in str(disabled.data)
    assert not PurgeRun.objects.exists()


def test_scheduled_run_takes_the_policy_cutoff_when_it_starts(clock, make_policy, operator):
    make_policy("audit_logs", 30)
    operator.post("/system/retention/audit_logs/purge")
    clock.shift(timedelta(hours=2))

    purger.run_retention()

    run = PurgeRun.objects.get()
    assert run.cutoff == NOW + timedelta(hours=2) - timedelta(days=30)
    assert run.started_at == NOW + timedelta(hours=2)


# --- interrupted runs ---------------------------------------------------------------------


def test_an_expired_lease_marks_the_run_interrupted_and_the_next_run_resumes(
    clock, make_policy, settings
):
    settings.RETENTION_LEASE_SECONDS = 60
    policy = make_policy("audit_logs", 30)
    old = old_logs(10)
    # A worker claimed the category, deleted the first four rows, then died.
    dead = purger.start_run(policy=policy, actor=SYSTEM, dry_run=False)
    SystemLog.objects.filter(pk__in=old[:4]).delete()
    PurgeRun.objects.filter(pk=dead.pk).update(deleted=4, batches=1, last_pk=old[3])
    newer = old_logs(2, when=NOW - timedelta(days=20))  # expired by the time it resumes

    clock.shift(timedelta(seconds=30))
    assert purger.run_retention() == 0  # the lease holds: nobody else touches the category
    clock.shift(timedelta(days=15))
    resumed_deleted = purger.run_retention()

    dead.refresh_from_db()
    assert dead.status == PurgeRun.Status.INTERRUPTED
    assert "next run resumes" in dead.error
    resumed = PurgeRun.objects.get(resumes=dead.pk)
    assert resumed.status == PurgeRun.Status.COMPLETED
    assert resumed.cutoff == dead.cutoff  # the same purge, continued
    assert resumed_deleted == resumed.deleted == 6
    assert resumed.last_pk == old[-1]
    # Rows younger than the interrupted run's cutoff wait for the next regular run.
    assert set(SystemLog.objects.filter(action="old.row").values_list("pk", flat=True)) == set(
        newer
    )
    levels = list(
        SystemLog.objects.filter(action="retention.purge").values_list("level", flat=True)
    )
    assert "warning" in levels  # the interruption is in the audit log


def test_sigterm_interrupts_the_run_and_the_next_run_resumes(clock, make_policy, settings):
    settings.RETENTION_BATCH_SIZE = 2
    settings.RETENTION_BATCH_MAX_SIZE = 2
    make_policy("audit_logs", 30)
    old_logs(6)

    def stop_after_first(run, deleted):
        worker._stop_requested.set()

    claimed = purger.claim_next(actor=SYSTEM)
    assert claimed is not None
    run = purger.execute_run(claimed, actor=SYSTEM, progress=stop_after_first)
    worker._stop_requested.clear()

    assert (run.status, run.deleted) == (PurgeRun.Status.INTERRUPTED, 2)
    assert purger.run_retention() == 4
    assert PurgeRun.objects.get(resumes=run.pk).deleted == 4


@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_run_is_interrupted_and_resumed(postgres, make_policy, settings):
    """A real worker process, killed with SIGKILL in the middle of a purge."""
    make_policy("audit_logs", 30)
    total = 3000
    old_logs(total, when=timezone.now() - timedelta(days=60))
    env = {
        **os.environ,
        "DATABASE_URL": postgres_url(),
        "RETENTION_BATCH_SIZE": "1",
        "RETENTION_BATCH_MAX_SIZE": "1",  # one row per batch: the purge takes seconds
        "RETENTION_LEASE_SECONDS": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_worker", "--only", "retention"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not PurgeRun.objects.filter(deleted__gte=20).exists():
            assert time.monotonic() < deadline, "the worker never got going"
            assert process.poll() is None, "the worker exited"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    dead = PurgeRun.objects.get()
    assert dead.status == PurgeRun.Status.RUNNING
    assert dead.locked_until is not None
    assert remaining_old() > 0

    settings.RETENTION_LEASE_SECONDS = 1
    with time_machine.travel(dead.locked_until + timedelta(seconds=1)):
        purger.run_retention()

    dead.refresh_from_db()
    resumed = PurgeRun.objects.get(resumes=dead.pk)
    assert dead.status == PurgeRun.Status.INTERRUPTED
    assert resumed.status == PurgeRun.Status.COMPLETED
    assert remaining_old() == 0
    # Each batch and its progress commit together: every deleted row is counted once.
    assert dead.deleted + resumed.deleted == total


def test_a_run_taken_over_stops_at_its_next_batch(clock, make_policy, settings, caplog):
    settings.RETENTION_BATCH_SIZE = 2
    settings.RETENTION_BATCH_MAX_SIZE = 2
    make_policy("audit_logs", 30)
    old_logs(6)

    def taken_over(run, deleted):  # another worker marked it interrupted meanwhile
        PurgeRun.objects.filter(pk=run.pk).update(status=PurgeRun.Status.INTERRUPTED)

    claimed = purger.claim_next(actor=SYSTEM)
    assert claimed is not None
    run = purger.execute_run(claimed, actor=SYSTEM, progress=taken_over)

    # The second batch's renewal found the run gone: that batch was rolled back.
    assert run.deleted == 4
    assert remaining_old() == 4
    assert PurgeRun.objects.get().status == PurgeRun.Status.INTERRUPTED
    assert "lost its lease" in caplog.text

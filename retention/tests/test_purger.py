import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.admin.models import LogEntry
from django.core.management import CommandError, call_command

from exports.models import ExportJob
from retention import purger
from retention.models import PurgeRun
from valhalla_ops import registry
from valhalla_ops.models import SystemLog
from valhalla_ops.principals import SYSTEM
from valhalla_ops.registry import RetentionCategory

pytestmark = pytest.mark.django_db

LONG_AGO = datetime(2024, 1, 1, 12, tzinfo=UTC)
NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)


def old_logs(count: int, *, when: datetime = LONG_AGO) -> list[int]:
    with time_machine.travel(when, tick=False):
        rows = SystemLog.objects.bulk_create(
            SystemLog(category="old", action="old.row", message="old") for _ in range(count)
        )
    return [row.pk for row in rows]


def purges() -> list[SystemLog]:
    return list(SystemLog.objects.filter(action="retention.purge"))


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def test_purge_deletes_old_rows_in_batches(clock, make_policy, settings):
    settings.RETENTION_BATCH_SIZE = 10
    settings.RETENTION_BATCH_MAX_SIZE = 10
    old = old_logs(25)
    recent = old_logs(3, when=NOW - timedelta(days=5))
    policy = make_policy("audit_logs", 30)
    batches: list[int] = []

    run = purger.purge_policy(policy=policy, actor=SYSTEM, progress=lambda r, n: batches.append(n))

    assert batches == [10, 10, 5]
    assert run.status == PurgeRun.Status.COMPLETED
    assert (run.deleted, run.batches) == (25, 3)
    assert run.cutoff == NOW - timedelta(days=30)
    assert not SystemLog.objects.filter(pk__in=old).exists()
    assert SystemLog.objects.filter(pk__in=recent).count() == 3


def test_purge_records_a_run_and_one_audit_row(clock, make_policy):
    old_logs(4)
    policy = make_policy("audit_logs", 30)

    run = purger.purge_policy(policy=policy, actor=SYSTEM)

    stored = PurgeRun.objects.get()
    assert stored.pk == run.pk
    assert (stored.category, stored.deleted, stored.dry_run) == ("audit_logs", 4, False)
    assert stored.finished_at == NOW
    [row] = purges()
    assert row.context["deleted"] == 4
    assert row.context["category"] == "audit_logs"
    assert row.target_id == str(run.pk)


def test_dry_run_deletes_nothing(clock, make_policy):
    old = old_logs(7)
    policy = make_policy("audit_logs", 30)

    run = purger.purge_policy(policy=policy, actor=SYSTEM, dry_run=True)

    assert run.deleted == 7
    assert run.dry_run is True
    assert SystemLog.objects.filter(pk__in=old).count() == 7
    assert purges() == []


def test_protected_rows_are_kept(clock, make_policy):
    with time_machine.travel(LONG_AGO, tick=False):
        pending = ExportJob.objects.create(job_type="x")
        running = ExportJob.objects.create(job_type="x", status="running")
        failed = ExportJob.objects.create(job_type="x", status="failed")
        done = ExportJob.objects.create(
            job_type="x", status="completed", storage_url="s3://b/x", completed_at=LONG_AGO
        )
    policy = make_policy("export_jobs", 30)

    run = purger.purge_policy(policy=policy, actor=SYSTEM)

    assert run.deleted == 2
    assert set(ExportJob.objects.values_list("pk", flat=True)) == {pending.pk, running.pk}
    assert not ExportJob.objects.filter(pk__in=[failed.pk, done.pk]).exists()


def test_only_delivered_notifications_are_purged(clock, make_policy):
    from notify import services as notify_services
    from notify.models import NotificationOutbox

    channel, _secret = notify_services.create_channel(
        actor=SYSTEM, name="old-alerts", channel_type="email", target="ops@example.com"
    )
    with time_machine.travel(LONG_AGO, tick=False):
        rows = {
            status: NotificationOutbox.objects.create(
                channel=channel,
                subject=status,
                body="",
                status=status,
                sent_at=LONG_AGO if status == "sent" else None,
            ).pk
            for status in ("pending", "sent", "failed")
        }
    policy = make_policy("notifications", 30)

    run = purger.purge_policy(policy=policy, actor=SYSTEM)

    assert run.deleted == 1
    assert set(NotificationOutbox.objects.values_list("pk", flat=True)) == {
        rows["pending"],
        rows["failed"],
    }


def test_admin_log_category_uses_action_time(clock, make_policy, staff_user):
    with time_machine.travel(LONG_AGO, tick=False):
        LogEntry.objects.create(user=staff_user, action_flag=1, object_repr="x")
    LogEntry.objects.create(user=staff_user, action_flag=1, object_repr="y")
    policy = make_policy("admin_log", 30)

    run = purger.purge_policy(policy=policy, actor=SYSTEM)

    assert run.deleted == 1
    assert list(LogEntry.objects.values_list("object_repr", flat=True)) == ["y"]


def test_a_failing_category_is_recorded_and_the_others_go_on(clock, make_policy, caplog):
    def broken():
        raise RuntimeError("table is gone")

    registry.retention_categories.register(
        "broken", RetentionCategory(name="broken", description="", queryset=broken)
    )
    try:
        make_policy("broken", 30)
        make_policy("audit_logs", 30)
        old_logs(2)

        deleted = purger.run_retention()
    finally:
        registry.retention_categories._entries.pop("broken")

    runs = {run.category: run for run in PurgeRun.objects.all()}
    assert deleted == 2
    assert runs["broken"].status == PurgeRun.Status.FAILED
    assert runs["broken"].error == "RuntimeError: table is gone"
    assert runs["audit_logs"].status == PurgeRun.Status.COMPLETED
    assert any(r.exc_info for r in caplog.records if "broken" in r.getMessage())


def test_a_policy_for_an_unregistered_category_fails_its_run(clock, make_policy):
    policy = make_policy("gone_category", 30)

    run = purger.purge_policy(policy=policy, actor=SYSTEM)

    assert run.status == PurgeRun.Status.FAILED
    assert "not registered" in run.error


def test_worker_step_runs_each_category_at_most_once_an_hour(clock, make_policy):
    make_policy("audit_logs", 30)
    old_logs(3)

    first = purger.run_retention()
    old_logs(2)
    second = purger.run_retention()
    clock.shift(timedelta(minutes=61))
    third = purger.run_retention()

    assert (first, second, third) == (3, 0, 2)
    assert PurgeRun.objects.count() == 2


def test_worker_step_skips_disabled_policies(clock, make_policy):
    make_policy("audit_logs", 30, enabled=False)
    old_logs(3)

    assert purger.run_retention() == 0
    assert not PurgeRun.objects.exists()


def test_dry_runs_do_not_count_as_the_hourly_purge(clock, make_policy):
    policy = make_policy("audit_logs", 30)
    old_logs(3)
    purger.purge_policy(policy=policy, actor=SYSTEM, dry_run=True)

    assert purger.run_retention() == 3


def test_worker_step_pauses_in_read_only_mode(clock, make_policy, set_maintenance_mode, caplog):
    make_policy("audit_logs", 30)
    old = old_logs(3)
    set_maintenance_mode("read_only")

    first = purger.run_retention()
    second = purger.run_retention()

    assert (first, second) == (0, 0)
    assert SystemLog.objects.filter(pk__in=old).count() == 3
    assert not PurgeRun.objects.exists()
    paused = [r for r in caplog.records if "paused" in r.getMessage()]
    assert len(paused) == 1
    set_maintenance_mode("normal")
    assert purger.run_retention() == 3


def test_purge_stops_between_batches_when_the_mode_changes(
    clock, make_policy, settings, monkeypatch
):
    settings.RETENTION_BATCH_SIZE = 2
    old_logs(6)
    policy = make_policy("audit_logs", 30)
    answers = iter([True, False])
    monkeypatch.setattr(purger.modes, "purges_allowed", lambda: next(answers))

    run = purger.purge_policy(policy=policy, actor=SYSTEM)

    assert run.deleted == 2
    assert "left normal mode" in run.error


# --- manage.py purge_expired ------------------------------------------------------------


def test_command_purges_with_progress(clock, make_policy, settings, capsys):
    settings.RETENTION_BATCH_SIZE = 2
    make_policy("audit_logs", 30)
    old_logs(3)

    call_command("purge_expired")

    out = capsys.readouterr().out
    assert "audit_logs: batch 1: deleted 2 (total 2)" in out
    assert "audit_logs: batch 2: deleted 1 (total 3)" in out
    assert "audit_logs: deleted 3 row(s) older than 2024-05-02 12:00" in out
    assert purges()[0].actor == "manage.py purge_expired"


def test_command_dry_run(clock, make_policy, capsys):
    make_policy("audit_logs", 30)
    old = old_logs(3)

    call_command("purge_expired", "--dry-run", "--category", "audit_logs")

    assert "audit_logs: would delete 3 row(s)" in capsys.readouterr().out
    assert SystemLog.objects.filter(pk__in=old).count() == 3


def test_command_unknown_category(make_policy):
    with pytest.raises(
        CommandError, match=r"Unknown category 'temp_data'\. Registered: .*audit_logs"
    ):
        call_command("purge_expired", "--category", "temp_data")


def test_command_category_without_policy():
    with pytest.raises(CommandError, match="No retention policy for 'admin_log'"):
        call_command("purge_expired", "--category", "admin_log")


def test_command_refuses_while_paused(make_policy, set_maintenance_mode):
    make_policy("audit_logs", 30)
    set_maintenance_mode("maintenance")

    with pytest.raises(CommandError, match="paused: the system is in maintenance mode"):
        call_command("purge_expired")


def test_command_fails_when_a_category_fails(make_policy):
    make_policy("gone_category", 30)

    with pytest.raises(CommandError, match="Purge failed for: gone_category"):
        call_command("purge_expired")


@pytest.mark.django_db(transaction=True)  # the worker closes old connections between passes
def test_run_worker_once_drains_exports_and_retention(clock, make_policy, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.RETENTION_BATCH_SIZE = 2
    settings.EXPORTS_BATCH_SIZE = 1
    make_policy("audit_logs", 30)
    old = old_logs(5)
    jobs = [ExportJob.objects.create(job_type="api_clients_export") for _ in range(3)]

    call_command("run_worker", "--once")

    assert not SystemLog.objects.filter(pk__in=old).exists()
    assert PurgeRun.objects.get().deleted == 5
    statuses = set(
        ExportJob.objects.filter(pk__in=[j.pk for j in jobs]).values_list("status", flat=True)
    )
    assert statuses == {"completed"}


def test_command_dry_run_as_json(clock, make_policy, capsys):
    make_policy("audit_logs", 30)
    old_logs(3)

    call_command("purge_expired", "--dry-run", "--json")

    [run] = json.loads(capsys.readouterr().out)
    assert run == {
        "category": "audit_logs",
        "dry_run": True,
        "cutoff": "2024-05-02T12:00:00+00:00",
        "deleted": 3,
        "batches": 0,
        "status": "completed",
        "error": "",
    }

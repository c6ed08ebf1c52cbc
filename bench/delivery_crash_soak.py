"""Kill -9 soak at full size: 10,000 webhooks, 4 worker processes, one SIGKILLed every 2 s.

Each killed worker is started again at once; the run ends when the outbox has drained. It
reports lost notifications (must be 0), duplicate deliveries (each must carry the same
webhook-id as the first), kills and the time taken. Workers run with the default delivery
settings and a 5 s lease (so a killed worker's rows come back quickly).

    .venv/bin/python bench/delivery_crash_soak.py
    .venv/bin/python bench/delivery_crash_soak.py --count 10000 --workers 4 --kill-every 2

The database is PostgreSQL on loopback (`--database-url`, created if missing); its outbox is
emptied first. The receiver is an HTTP/1.1 keep-alive server in this process.
"""

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/valhalla_ops_bench"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kill-every", type=float, default=2.0, help="seconds between kills")
    parser.add_argument("--lease", type=int, default=5, help="NOTIFY_LEASE_SECONDS of workers")
    parser.add_argument("--delay", type=float, default=0.0, help="receiver answer delay (s)")
    args = parser.parse_args()
    if not 100 <= args.count <= 1_000_000 or not 1 <= args.workers <= 16:
        parser.error("--count must be 100-1000000 and --workers 1-16")
    return args


def main() -> None:
    args = parse_args()
    common.ensure_database(args.database_url)
    env = common.bench_env(args.database_url, "")
    common.setup_django("valhalla_ops.settings", env)
    common.migrate_and_check_normal()
    from django.db import connection

    from notify.models import NotificationChannel, NotificationOutbox
    from notify.tests.soak import CountingReceiver, soak

    print("\n".join(common.machine(database_url=args.database_url)))
    print(f"load average before: {common.load_average()}")
    receiver = CountingReceiver(delay=args.delay)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE notify_notificationoutbox")
    channels = []
    for index in range(4):
        channel, _ = NotificationChannel.objects.update_or_create(
            name=f"bench-soak-{index}",
            defaults={"channel_type": "webhook", "target": receiver.url, "active": True},
        )
        channels.append(channel)
    rows = NotificationOutbox.objects.bulk_create(
        (
            NotificationOutbox(channel=channels[i % 4], subject=f"n{i}", payload={"i": i})
            for i in range(args.count)
        ),
        batch_size=2000,
    )
    worker_env = env | {
        "NOTIFY_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "NOTIFY_LEASE_SECONDS": str(args.lease),
    }
    connection.close()
    try:
        result = soak(
            env=worker_env,
            receiver=receiver,
            pending=NotificationOutbox.objects.pending().count,
            workers=args.workers,
            kill_every=args.kill_every,
            timeout=1800,
        )
    finally:
        receiver.stop()
    sent = NotificationOutbox.objects.filter(status="sent").count()
    missing = {str(row.message_id) for row in rows} - set(result.received)
    print(f"\n== kill -9 soak: {args.count} webhooks, {args.workers} workers ==")
    print(f"  kills (SIGKILL, every {args.kill_every} s): {result.kills}")
    print(f"  drained in {result.seconds:.1f} s ({args.count / result.seconds:.0f} webhooks/s)")
    print(f"  rows sent: {sent} of {args.count}; never received: {len(missing)}")
    print(f"  deliveries: {result.deliveries}; duplicates: {result.duplicates}")
    print(
        f"  duplicates whose body names another message than their webhook-id: "
        f"{len(result.mismatched)}"
    )
    lost = args.count - sent + len(missing)
    print(f"  lost: {lost} ({common.verdict(-lost, 0)})")
    print(f"load average after: {common.load_average()}")
    common.expect(lost == 0 and not result.mismatched, "the soak lost or mislabelled deliveries")


if __name__ == "__main__":
    main()

"""Deliveries per second of one worker process, against the same work without the project.

Three cases, each `--count` notifications, rounds interleaved (project, baseline, project, ...):

- webhooks to an instant loopback receiver: the worker (`run_worker --once` loop, default
  settings: 32 in flight, 8 per channel; 4 webhook channels) against a raw loop that claims
  256 rows with one `UPDATE ... RETURNING` (psycopg, `SKIP LOCKED`), POSTs them with httpx
  through a pool of as many threads as the worker has slots, and marks them sent in one
  `UPDATE`. Goals: >= 1,000 webhooks/s and >= 0.8x the raw loop.
- webhooks to a receiver that answers after 50 ms: goal >= 0.8 x 32 / 0.05 s = 512/s.
- emails to an aiosmtpd sink (a separate process): the worker against django-post-office's
  `send_queued_mail` on the same number of queued mails. Goal: >= 2x.

    .venv/bin/python bench/delivery_speed.py                      # 3 rounds, 2,000 each
    .venv/bin/python bench/delivery_speed.py --rounds 5 --count 2000 --cases webhook,email

Every server is on loopback; the database is PostgreSQL (`--database-url`, created if
missing). The outbox of that database is emptied before each run.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/valhalla_ops_bench"
CHANNELS = 4
RAW_CLAIM = 256


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--count", type=int, default=2000, help="notifications per run")
    parser.add_argument("--cases", default="webhook,slow,email", help="comma-separated cases")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 50 or not 50 <= args.count <= 100_000:
        parser.error("--rounds must be 1-50 and --count 50-100000")
    return args


class Server:
    """A helper server in its own process; it prints `listening on host:port` when ready."""

    def __init__(self, *command: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, *command], stdout=subprocess.PIPE, text=True, cwd=common.ROOT
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "listening on" not in line:
            raise SystemExit(f"{command[0]} did not start: {line!r}")
        self.port = int(line.rsplit(":", 1)[1])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def start_smtp_sink() -> Server:
    code = (
        "import time; from aiosmtpd.controller import Controller; "
        "from aiosmtpd.handlers import Sink; "
        "from valhalla_ops.tests.services import free_port; "
        "c = Controller(Sink(), hostname='127.0.0.1', port=free_port()); c.start(); "
        "print(f'listening on 127.0.0.1:{c.port}', flush=True); time.sleep(10**6)"
    )
    return Server("-c", code)


def setup(args: argparse.Namespace, smtp_port: int) -> None:
    common.ensure_database(args.database_url)
    env = common.bench_env(args.database_url, "")
    env |= {
        "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}",
        "NOTIFY_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
    }
    common.setup_django("bench.settings_delivery", env)
    common.migrate_and_check_normal()


def reset_outbox() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE notify_notificationoutbox")
        cursor.execute("TRUNCATE post_office_email CASCADE")


def channels(kind: str, target: str, count: int) -> list:
    from notify.models import NotificationChannel

    made = []
    for index in range(count):
        channel, _ = NotificationChannel.objects.update_or_create(
            name=f"bench-{kind}-{index}",
            defaults={"channel_type": kind, "target": target, "active": True},
        )
        made.append(channel)
    return made


def queue(chans: list, count: int) -> None:
    from notify.models import NotificationOutbox

    rows = [
        NotificationOutbox(
            channel=chans[index % len(chans)],
            topic="bench.delivery",
            subject=f"Bench {index}",
            body="A notification of the delivery benchmark.",
            payload={"index": index, "text": "x" * 200},
        )
        for index in range(count)
    ]
    NotificationOutbox.objects.bulk_create(rows, batch_size=1000)


def run_project(chans: list, count: int) -> float:
    """Seconds for one worker loop (`run_worker --once`) to deliver `count` rows."""
    from django.db import connection

    from notify import dispatcher
    from notify.models import NotificationOutbox
    from valhalla_ops.worker import Worker

    reset_outbox()
    queue(chans, count)
    connection.close()
    started = time.perf_counter()
    Worker([("notify", dispatcher.dispatch_due)], interval=1.0).run(once=True)
    elapsed = time.perf_counter() - started
    sent = NotificationOutbox.objects.filter(status="sent").count()
    common.expect(sent == count, f"project delivered {sent} of {count}")
    return elapsed


def run_raw_webhooks(chans: list, count: int, url: str, database_url: str) -> float:
    """Seconds for a raw claim + concurrent POST + bulk mark-sent loop."""
    import httpx
    import psycopg
    from django.conf import settings

    reset_outbox()
    queue(chans, count)
    slots = settings.NOTIFY_CONCURRENCY
    client = httpx.Client(limits=httpx.Limits(max_connections=slots), trust_env=False)
    claim = """
        UPDATE notify_notificationoutbox SET locked_until = now() + interval '60 s',
               lease_token = %s
         WHERE id IN (SELECT id FROM notify_notificationoutbox
                       WHERE status = 'pending' AND next_attempt_at <= now()
                         AND (locked_until IS NULL OR locked_until < now())
                       ORDER BY next_attempt_at, id LIMIT %s FOR UPDATE SKIP LOCKED)
        RETURNING id, message_id::text, subject, payload::text
    """
    mark = """
        UPDATE notify_notificationoutbox SET status = 'sent', sent_at = now(),
               attempts = attempts + 1, locked_until = NULL, lease_token = NULL
         WHERE id = ANY(%s)
    """

    def post(row: tuple) -> int:
        body = f'{{"id":{row[0]},"subject":"{row[2]}","payload":{row[3]}}}'
        headers = {"webhook-id": row[1], "content-type": "application/json"}
        return client.post(url, content=body, headers=headers).status_code

    started = time.perf_counter()
    with (
        psycopg.connect(database_url, autocommit=True) as conn,
        ThreadPoolExecutor(slots) as pool,
    ):
        while True:
            rows = conn.execute(claim, [uuid.uuid4(), RAW_CLAIM]).fetchall()
            if not rows:
                break
            statuses = list(pool.map(post, rows))
            common.expect(set(statuses) == {200}, f"raw loop got {set(statuses)}")
            conn.execute(mark, [[row[0] for row in rows]])
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed


def run_post_office(count: int) -> float:
    from django.core.management import call_command
    from post_office import mail
    from post_office.models import Email

    reset_outbox()
    mail.send_many(
        [
            {
                "sender": "valhalla-ops@localhost",
                "recipients": [f"owner{index % CHANNELS}@example.com"],
                "subject": f"Bench {index}",
                "message": "A notification of the delivery benchmark.\n" + "x" * 200,
            }
            for index in range(count)
        ]
    )
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        call_command("send_queued_mail", lockfile=str(Path(directory) / "lock"), log_level=0)
        elapsed = time.perf_counter() - started
    sent = Email.objects.filter(status=0).count()  # post_office's STATUS.sent
    common.expect(sent == count, f"post_office sent {sent} of {count}")
    return elapsed


def compare(name: str, runs: dict, rounds: int, count: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {label: [] for label in runs}
    for run in runs.values():  # warm-up: connections, pools, first queries
        run(max(count // 10, 50))
    for _ in range(rounds):
        for label, run in runs.items():
            rates[label].append(count / run(count))
    print(f"\n== {name}: {count} per run, {rounds} interleaved rounds ==")
    for label, values in rates.items():
        print(f"  {label:<34} median {statistics.median(values):8.0f}/s  rounds {values}")
    return rates


def paired(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def report_webhooks(rates: dict[str, list[float]]) -> None:
    project, raw = rates["worker"], rates["raw claim + POST loop"]
    value = statistics.median(project)
    share = paired(project, raw)
    print(f"  worker >= 1000/s: {value:.0f}/s ({common.verdict(value, 1000)})")
    print(f"  worker / raw (paired median): {share:.2f}x ({common.verdict(share, 0.8)})")


def main() -> None:
    args = parse_args()
    cases = set(args.cases.split(","))
    instant = Server("bench/webhook_receiver.py")
    slow = Server("bench/webhook_receiver.py", "--delay", "0.05")
    sink = start_smtp_sink()
    try:
        setup(args, sink.port)
        from django.conf import settings

        print("\n".join(common.machine(database_url=args.database_url)))
        print(f"load average before: {common.load_average()}")
        slots, cap = settings.NOTIFY_CONCURRENCY, settings.NOTIFY_CHANNEL_CONCURRENCY
        print(f"worker: NOTIFY_CONCURRENCY={slots} NOTIFY_CHANNEL_CONCURRENCY={cap}")
        measure(cases, args, instant, slow)
        if "email" in cases:
            email = channels("email", "owner@example.com", 1)
            rates = compare(
                "emails to an aiosmtpd sink",
                {
                    "worker": lambda n: run_project(email, n),
                    "django-post-office send_queued_mail": run_post_office,
                },
                args.rounds,
                args.count,
            )
            share = paired(rates["worker"], rates["django-post-office send_queued_mail"])
            print(
                f"  worker / post_office (paired median): {share:.2f}x "
                f"({common.verdict(share, 2.0)})"
            )
        print(f"load average after: {common.load_average()}")
    finally:
        for server in (instant, slow, sink):
            server.stop()


def measure(cases: set[str], args: argparse.Namespace, instant: Server, slow: Server) -> None:
    from django.conf import settings

    if "webhook" in cases:
        url = f"http://127.0.0.1:{instant.port}/hook"
        hooks = channels("webhook", url, CHANNELS)
        rates = compare(
            "webhooks to an instant loopback receiver",
            {
                "worker": lambda n: run_project(hooks, n),
                "raw claim + POST loop": lambda n: run_raw_webhooks(
                    hooks, n, url, args.database_url
                ),
            },
            args.rounds,
            args.count,
        )
        report_webhooks(rates)
    if "slow" in cases:
        url = f"http://127.0.0.1:{slow.port}/hook"
        hooks = channels("webhook", url, CHANNELS)
        rates = compare(
            "webhooks to a 50 ms receiver",
            {"worker": lambda n: run_project(hooks, n)},
            args.rounds,
            args.count,
        )
        goal = 0.8 * settings.NOTIFY_CONCURRENCY / 0.05
        value = statistics.median(rates["worker"])
        print(
            f"  worker >= 0.8 x {settings.NOTIFY_CONCURRENCY} / 0.05 s = {goal:.0f}/s: "
            f"{value:.0f}/s ({common.verdict(value, goal)})"
        )


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()

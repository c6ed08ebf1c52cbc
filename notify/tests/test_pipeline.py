"""Many deliveries in flight: the per-channel cap, connection reuse, batched claims and results."""

import threading
import time
import uuid
from collections import Counter
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from notify import dispatcher, pipeline, transports
from notify.models import NotificationOutbox
from notify.tests.conftest import Inbox
from valhalla_ops import sealing, worker
from valhalla_ops.tests.services import free_port

pytestmark = pytest.mark.django_db


class Receiver:
    """A threaded HTTP/1.1 receiver on 127.0.0.1 that keeps connections alive.

    It notes, per path, each request's client port and how many ran at once. `/fast`
    answers at once; `/slow` after 10 s, or as soon as every expected fast one has arrived.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ports: dict[str, list[int]] = {}
        self.running: Counter[str] = Counter()
        self.most_running: Counter[str] = Counter()
        self.gate = threading.Event()
        self.fast_done = threading.Event()
        self.fast_expected = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                body = receiver.answer(self.path.strip("/"), self.client_address[1])
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128  # many connections at once

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url_for(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def answer(self, path: str, port: int) -> bytes:
        with self.lock:
            self.ports.setdefault(path, []).append(port)
            self.running[path] += 1
            self.most_running[path] = max(self.most_running[path], self.running[path])
            if path == "fast" and len(self.ports["fast"]) >= self.fast_expected:
                self.fast_done.set()
        if path == "slow":
            self.gate.wait(10)
        with self.lock:
            self.running[path] -= 1
        return b"ok"


@pytest.fixture
def receiver(settings):
    settings.NOTIFY_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.NOTIFY_HTTP_TIMEOUT = 15.0
    receiver = Receiver()
    yield receiver
    receiver.gate.set()
    receiver.server.shutdown()
    receiver.server.server_close()


def webhooks(channel, count: int) -> list[NotificationOutbox]:
    return NotificationOutbox.objects.bulk_create(
        NotificationOutbox(channel=channel, subject=f"n{i}", payload={"i": i}) for i in range(count)
    )


def test_a_slow_receiver_holds_only_its_channels_share(receiver, make_channel, settings):
    settings.NOTIFY_CONCURRENCY, settings.NOTIFY_CHANNEL_CONCURRENCY = 16, 4
    slow = make_channel(channel_type="webhook", target=receiver.url_for("/slow"))
    fast = make_channel(channel_type="webhook", target=receiver.url_for("/fast"))
    webhooks(slow, 30)  # older: without a cap they would take every slot for 10 s
    webhooks(fast, 200)
    receiver.fast_expected = 200

    def release_the_slow_ones_when_the_fast_are_done() -> None:
        receiver.fast_done.wait(20)
        receiver.gate.set()

    threading.Thread(target=release_the_slow_ones_when_the_fast_are_done, daemon=True).start()
    started = time.monotonic()
    while dispatcher.dispatch_due():
        pass
    elapsed = time.monotonic() - started

    assert receiver.fast_done.is_set()
    assert receiver.most_running["slow"] == 4  # its cap, not the 16 slots
    assert elapsed < 10  # the 200 fast ones did not wait for a 10 s answer
    assert NotificationOutbox.objects.filter(status="sent").count() == 230


def test_webhooks_keep_their_connections_alive(receiver, make_channel, settings):
    settings.NOTIFY_CHANNEL_CONCURRENCY = 4
    channel = make_channel(channel_type="webhook", target=receiver.url_for("/fast"))
    webhooks(channel, 60)

    while dispatcher.dispatch_due():
        pass

    assert len(receiver.ports["fast"]) == 60
    assert len(set(receiver.ports["fast"])) <= 4  # connections, one per running delivery


class PeerInbox(Inbox):
    """Also notes the client address of each SMTP session that delivers mail."""

    def __init__(self) -> None:
        super().__init__()
        self.peers: list = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.peers.append(session.peer)
        return await super().handle_DATA(server, session, envelope)


def test_each_32_emails_of_a_batch_share_one_smtp_connection(
    settings, make_channel, make_notification
):
    inbox = PeerInbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = (
        "127.0.0.1",
        controller.port,
        5,
    )
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    channel = make_channel(target="owner@example.com")
    rows = [make_notification(channel=channel, subject=f"mail {i}") for i in range(40)]
    try:
        dispatcher.dispatch_due()
    finally:
        controller.stop()

    assert len(inbox.envelopes) == 40
    assert len(set(inbox.peers)) == 2  # 32 mails over one connection, 8 over another
    assert (
        NotificationOutbox.objects.filter(pk__in=[r.pk for r in rows], status="sent").count() == 40
    )


def test_each_channels_secret_is_unsealed_once_per_batch(
    receiver, make_channel, monkeypatch, settings
):
    channels = [
        make_channel(channel_type="webhook", target=receiver.url_for("/fast")) for _ in range(3)
    ]
    for channel in channels:
        webhooks(channel, 20)
    unsealed: list[str] = []
    real_unseal = sealing.unseal

    def counting(token: str) -> str:
        unsealed.append(token)
        return real_unseal(token)

    monkeypatch.setattr(sealing, "unseal", counting)

    dispatcher.dispatch_due()

    assert NotificationOutbox.objects.filter(status="sent").count() == 60
    assert len(unsealed) == 3


def test_claims_and_results_go_to_the_database_in_batches(
    make_notification, make_channel, monkeypatch, django_assert_max_num_queries
):
    monkeypatch.setattr(transports, "deliver", lambda notification, channel: None)
    channel = make_channel()
    for _ in range(120):
        make_notification(channel=channel)

    with django_assert_max_num_queries(12):  # not six per row, as one at a time would take
        handled = dispatcher.dispatch_due()

    assert handled == 120
    assert NotificationOutbox.objects.filter(status="sent", attempts=1).count() == 120


def test_deliveries_in_flight_when_the_turn_ends_are_recorded_when_the_worker_stops(
    make_notification, monkeypatch
):
    gate = threading.Event()
    monkeypatch.setattr(transports, "deliver", lambda notification, channel: gate.wait(5))
    first, second = make_notification(), make_notification()

    assert dispatcher.dispatch_due(limit=1) == 1  # the turn ends with the row in flight

    in_flight = NotificationOutbox.objects.get(status="pending", lease_token__isnull=False)
    gate.set()
    assert dispatcher.finish_in_flight in worker._at_stop
    worker.run_stop_callbacks()

    in_flight.refresh_from_db()
    assert in_flight.status == "sent"
    assert {first.pk, second.pk} - {in_flight.pk}


def test_a_row_waiting_behind_a_slow_receiver_has_its_lease_renewed(
    make_notification, make_channel, monkeypatch, settings
):
    settings.NOTIFY_LEASE_SECONDS = 30
    channel = make_channel()
    row = make_notification(channel=channel)
    line = pipeline.Pipeline(dispatcher.HOOKS)
    line.channels = {}
    assert line.claim(10) == 1  # held: no sender runs it
    first_lease = NotificationOutbox.objects.get(pk=row.pk).locked_until
    assert first_lease is not None
    clock = time.monotonic() + 11  # a third of the lease later
    monkeypatch.setattr(pipeline.time, "monotonic", lambda: clock)

    with pytest.MonkeyPatch.context() as later:
        later.setattr(dispatcher.timezone, "now", lambda: first_lease)
        line.renew_held()

    renewed = NotificationOutbox.objects.get(pk=row.pk)
    assert renewed.locked_until == first_lease + timedelta(seconds=30)
    assert renewed.lease_token == line.held[0][1]


def test_a_failed_row_is_not_taken_twice_in_one_turn(make_notification, monkeypatch):
    attempts: list[uuid.UUID] = []

    def refuse(notification, channel) -> None:
        attempts.append(notification.message_id)
        raise transports.TransportError("down")

    monkeypatch.setattr(transports, "deliver", refuse)
    row = make_notification()  # its first retry is due at once

    dispatcher.dispatch_due()
    row.refresh_from_db()
    assert (len(attempts), row.attempts) == (1, 1)

    dispatcher.dispatch_due()
    row.refresh_from_db()
    assert (len(attempts), row.attempts) == (2, 2)


def test_a_turn_starting_with_its_channel_full_still_drains_the_queue(
    make_notification, make_channel, monkeypatch, settings
):
    settings.NOTIFY_CONCURRENCY, settings.NOTIFY_CHANNEL_CONCURRENCY = 2, 1  # a share of 8 rows
    gate = threading.Semaphore(0)
    monkeypatch.setattr(transports, "deliver", lambda notification, channel: gate.acquire())
    channel = make_channel()  # email: a task carries up to 32 rows
    for _ in range(60):
        make_notification(channel=channel)

    assert dispatcher.dispatch_due(limit=10) == 10  # ends with 10 emails in flight

    def open_gate_later() -> None:  # once the next turn has found the channel full
        time.sleep(0.3)
        for _ in range(60):
            gate.release()

    threading.Thread(target=open_gate_later, daemon=True).start()
    while dispatcher.dispatch_due(limit=10):
        pass

    assert NotificationOutbox.objects.filter(status="sent").count() == 60

"""Several workers draining one outbox on PostgreSQL deliver each notification exactly once."""

import threading
from collections import Counter

import pytest
from django.db import connection
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from notify import dispatcher
from notify.models import NotificationOutbox

WORKERS = 4
NOTIFICATIONS = 60


@pytest.fixture
def counting_receiver(settings):
    """A threaded HTTP receiver on 127.0.0.1 that counts deliveries per webhook-id."""
    settings.NOTIFY_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    received: Counter[str] = Counter()
    lock = threading.Lock()

    def count(request: Request) -> Response:
        with lock:
            received[request.headers["webhook-id"]] += 1
        return Response("ok")

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.expect_request("/hook", method="POST").respond_with_handler(count)
    server.start()
    yield server, received
    server.stop()


def drain(errors: list[BaseException], start: threading.Barrier) -> None:
    try:
        start.wait()
        while dispatcher.dispatch_due(limit=5):
            pass
    except BaseException as error:  # surfaced by the test
        errors.append(error)
    finally:
        connection.close()


def run_workers(count: int) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(count)
    threads = [threading.Thread(target=drain, args=(errors, start)) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_deliver_each_notification_once(
    postgres, counting_receiver, make_channel
):
    server, received = counting_receiver
    channel = make_channel(channel_type="webhook", target=server.url_for("/hook"))
    rows = NotificationOutbox.objects.bulk_create(
        NotificationOutbox(channel=channel, subject=f"n{i}", payload={"i": i})
        for i in range(NOTIFICATIONS)
    )

    errors = run_workers(WORKERS)

    assert errors == []
    assert set(received) == {str(row.message_id) for row in rows}
    assert set(received.values()) == {1}
    assert NotificationOutbox.objects.filter(status="sent", attempts=1).count() == NOTIFICATIONS


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_never_share_a_row(postgres, make_notification):
    for _ in range(NOTIFICATIONS):
        make_notification()
    claims: list[list[int]] = []
    lock = threading.Lock()
    start = threading.Barrier(WORKERS)

    def claim() -> None:
        try:
            start.wait()
            while True:
                _token, pks = dispatcher.claim(limit=7)
                if not pks:
                    return
                with lock:
                    claims.append(pks)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    claimed = [pk for batch in claims for pk in batch]
    assert len(claimed) == NOTIFICATIONS
    assert len(set(claimed)) == NOTIFICATIONS

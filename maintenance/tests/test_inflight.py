"""Writes admitted just before a switch: a switch can wait until none is still running."""

import threading
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

from maintenance import inflight, services, state
from maintenance.tests import inflight_urls
from valhalla_ops.principals import SYSTEM

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["no-redis", "redis"])
def backend(request):
    if request.param == "redis":
        request.getfixturevalue("shared_redis")
    return request.param


@pytest.fixture
def slow_write():
    """Start a POST that the shield admits in normal mode and that runs until released."""
    inflight_urls.started.clear()
    inflight_urls.release.clear()
    results: list[int] = []

    def send() -> None:
        try:
            results.append(Client().post("/slow-write").status_code)
        finally:
            connection.close()

    thread = threading.Thread(target=send)
    thread.start()
    assert inflight_urls.started.wait(timeout=10)
    yield results
    inflight_urls.release.set()
    thread.join(timeout=10)


@pytest.mark.urls("maintenance.tests.inflight_urls")
def test_a_switch_waits_for_the_write_still_running(backend, slow_write):
    before = services.read_state()
    services.set_mode(actor=SYSTEM, mode="read_only", reason="lockdown")

    still_running = inflight.wait_for_writes(before.version, timeout=0.3)
    inflight_urls.release.set()
    drained = inflight.wait_for_writes(before.version, timeout=10)

    assert (still_running, drained) == (False, True)


def test_nothing_running_means_no_wait(backend):
    before = services.read_state()
    services.set_mode(actor=SYSTEM, mode="read_only")

    assert inflight.wait_for_writes(before.version, timeout=0) is True


def test_a_write_judged_in_normal_mode_counts_until_it_is_done(backend):
    judgement = state.judge_write()
    assert judgement is not None
    version = judgement.state.version

    held = inflight.wait_for_writes(version, timeout=0.1)
    judgement.done()

    assert held is False
    assert inflight.wait_for_writes(version, timeout=1) is True


def test_writes_refused_in_read_only_are_not_counted(backend):
    services.set_mode(actor=SYSTEM, mode="read_only")
    judgement = state.judge_write()
    assert judgement is not None

    assert judgement.ticket is None
    assert inflight.wait_for_writes(judgement.state.version, timeout=0) is True


@pytest.mark.urls("maintenance.tests.inflight_urls")
def test_the_command_waits_then_fails_after_its_timeout(backend, slow_write):
    with pytest.raises(CommandError, match=r"still running after 0\.2 s"):
        call_command("maintenance_mode", "read_only", "--wait", "0.2", stdout=StringIO())

    assert state.judge_write() is not None
    assert services.read_state().mode == "read_only"  # the switch itself happened


@pytest.mark.urls("maintenance.tests.inflight_urls")
def test_the_command_returns_once_the_write_is_done(backend, slow_write):
    out = StringIO()
    threading.Timer(0.3, inflight_urls.release.set).start()

    call_command("maintenance_mode", "read_only", "--wait", "20", stdout=out)

    assert inflight_urls.release.is_set()  # it did not return before the write could end
    assert "no write admitted in normal mode is still running" in out.getvalue()


def test_a_negative_wait_is_an_operator_error():
    with pytest.raises(CommandError, match="--wait needs a number of seconds"):
        call_command("maintenance_mode", "read_only", "--wait", "-1")

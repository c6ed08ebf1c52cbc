"""NOTIFY_SMS_BACKEND: a system check refuses a bad one at start; delivery refuses it too."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from notify import transports
from notify.checks import check_sms_backend
from notify.dispatcher import dispatch_due

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
BAD_BACKENDS = [
    "no.such.Backend",  # no such module
    "notify.transports.NoSuchBackend",  # no such name
    "notify.transports.SMS_MAX_CHARS",  # not a class
    "notify.transports.TransportError",  # a class without send()
    "notify.tests.test_sms_backend_setting.SendIsNotCallable",
]


class RecordingSmsBackend:
    """Stands in for a paid SMS provider."""

    sent: list[str] = []

    def send(self, *, to: str, body: str, message_id: str) -> None:
        self.sent.append(to)


class SendIsNotCallable:
    send = "not a method"


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("backend", BAD_BACKENDS)
def test_check_refuses_a_bad_backend_naming_the_variable(settings, backend):
    settings.NOTIFY_SMS_BACKEND = backend

    [error] = check_sms_backend()

    assert error.id == "notify.E001"
    assert error.msg.startswith("NOTIFY_SMS_BACKEND: ")
    assert repr(backend) in error.msg


def test_check_accepts_the_shipped_backends(settings):
    settings.NOTIFY_SMS_API_URL = "https://sms.example.com/send"

    for backend in ["notify.transports.ConsoleSmsBackend", "notify.transports.HttpSmsBackend"]:
        settings.NOTIFY_SMS_BACKEND = backend
        assert check_sms_backend() == []


def test_check_refuses_the_http_backend_without_a_gateway_url(settings):
    settings.NOTIFY_SMS_BACKEND = "notify.transports.HttpSmsBackend"
    settings.NOTIFY_SMS_API_URL = ""

    [error] = check_sms_backend()

    assert error.id == "notify.E002"
    assert "NOTIFY_SMS_API_URL" in error.msg


def test_manage_py_check_stops_on_a_bad_backend():
    result = manage("check", NOTIFY_SMS_BACKEND="no.such.Backend")

    assert result.returncode == 1
    assert "(notify.E001) NOTIFY_SMS_BACKEND: cannot import 'no.such.Backend'" in result.stderr


def test_manage_py_check_passes_with_a_good_backend():
    result = manage(
        "check",
        NOTIFY_SMS_BACKEND="notify.transports.HttpSmsBackend",
        NOTIFY_SMS_API_URL="https://sms.example.com/send",
    )

    assert result.returncode == 0, result.stderr


def test_the_worker_does_not_start_with_a_bad_backend():
    result = manage("run_worker", "--once", NOTIFY_SMS_BACKEND="notify.transports.TransportError")

    assert result.returncode == 1
    assert "(notify.E001) NOTIFY_SMS_BACKEND:" in result.stderr
    assert "worker: steps" not in result.stdout


@pytest.mark.parametrize("backend", BAD_BACKENDS)
def test_sending_with_a_bad_backend_raises_naming_the_variable(
    settings, make_channel, make_notification, backend
):
    settings.NOTIFY_SMS_BACKEND = backend
    channel = make_channel(channel_type="sms", target="+4915112345678")
    notification = make_notification(channel=channel)

    with pytest.raises(ImproperlyConfigured, match=r"^NOTIFY_SMS_BACKEND: "):
        transports.send_sms(notification, channel)


def test_a_bad_backend_leaves_the_sms_pending_until_it_is_fixed(
    settings, make_channel, make_notification
):
    settings.NOTIFY_SMS_BACKEND = "no.such.Backend"
    RecordingSmsBackend.sent = []
    notification = make_notification(
        channel=make_channel(channel_type="sms", target="+4915112345678")
    )

    dispatch_due()
    notification.refresh_from_db()
    first = (notification.status, notification.last_error)
    settings.NOTIFY_SMS_BACKEND = "notify.tests.test_sms_backend_setting.RecordingSmsBackend"
    dispatch_due()  # the first retry is immediate
    notification.refresh_from_db()

    assert first[0] == "pending"
    assert "ImproperlyConfigured: NOTIFY_SMS_BACKEND: cannot import 'no.such.Backend'" in first[1]
    assert notification.status == "sent"
    assert notification.attempts == 2
    assert RecordingSmsBackend.sent == ["+4915112345678"]

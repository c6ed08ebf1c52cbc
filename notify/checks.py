"""System checks: `manage.py check`, `migrate`, `runserver` and `run_worker` run them at start."""

from collections.abc import Sequence

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from notify import transports


def check_sms_backend(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: object
) -> list[checks.CheckMessage]:
    """NOTIFY_SMS_BACKEND imports and has send(); HttpSmsBackend has a gateway URL."""
    try:
        backend = transports.sms_backend_class()
    except ImproperlyConfigured as error:
        hint = "A class with send(*, to, body, message_id), e.g. notify.transports.HttpSmsBackend."
        return [checks.Error(str(error), hint=hint, id="notify.E001")]
    if (
        isinstance(backend, type)
        and issubclass(backend, transports.HttpSmsBackend)
        and not settings.NOTIFY_SMS_API_URL
    ):
        return [
            checks.Error(
                "NOTIFY_SMS_API_URL is empty, but NOTIFY_SMS_BACKEND is an HttpSmsBackend.",
                hint="Set NOTIFY_SMS_API_URL to the gateway's http(s) URL.",
                id="notify.E002",
            )
        ]
    return []

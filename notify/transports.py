"""The edge to the outside world: email, signed webhooks and SMS. Never called in a transaction."""

import json
import logging
import smtplib
import socket
import ssl
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Protocol, cast

import certifi
import httpcore
import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import BadHeaderError, EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.serializers.json import DjangoJSONEncoder
from django.utils.module_loading import import_string
from standardwebhooks.webhooks import Webhook

from notify.validators import address_allowed, literal_ip

if TYPE_CHECKING:
    from notify.models import NotificationChannel, NotificationOutbox

logger = logging.getLogger(__name__)

USER_AGENT = "valhalla-ops-notify/1.0"
ERROR_BODY_BYTES = 512
SMS_MAX_CHARS = 1600


class TransportError(Exception):
    """A delivery failed; `permanent` failures are not retried."""

    permanent = False

    def __init__(self, message: str, *, permanent: bool | None = None) -> None:
        super().__init__(message)
        if permanent is not None:
            self.permanent = permanent


class GoneError(TransportError):
    """The receiver answered 410 Gone: it wants no more deliveries."""

    permanent = True


class AddressRefused(TransportError):
    """The webhook host resolves to an address we do not send to (SSRF guard)."""

    permanent = True


def deliver(notification: "NotificationOutbox", channel: "NotificationChannel") -> None:
    """Send one notification through its channel; raises TransportError on failure."""
    senders = {"email": send_email, "webhook": send_webhook, "sms": send_sms}
    senders[channel.channel_type](notification, channel)


def text_body(notification: "NotificationOutbox") -> str:
    if notification.body:
        return notification.body
    details = json.dumps(notification.payload, cls=DjangoJSONEncoder, indent=2, sort_keys=True)
    return f"{notification.subject}\n\n{details}\n"


# --- email --------------------------------------------------------------------------------


_smtp = threading.local()


@contextmanager
def smtp_session() -> Iterator[None]:
    """Send every email of this thread over one SMTP connection until the block ends.

    The connection opens with the first email; one that breaks is closed and the next email
    opens a new one.
    """
    timeout = getattr(settings, "EMAIL_TIMEOUT", None) or settings.NOTIFY_HTTP_TIMEOUT
    _smtp.connection = get_connection(fail_silently=False, timeout=timeout)
    try:
        yield
    finally:
        connection, _smtp.connection = _smtp.connection, None
        try:
            connection.close()
        except Exception:  # the server may already be gone; the mails are sent or recorded
            logger.warning("closing the SMTP connection failed", exc_info=True)


def email_message(
    notification: "NotificationOutbox", channel: "NotificationChannel"
) -> EmailMessage:
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2] or "localhost"
    subject = " ".join((notification.subject or notification.topic).splitlines())
    return EmailMessage(
        subject=subject,
        body=text_body(notification),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[channel.target],
        headers={
            "Message-ID": f"<{notification.message_id}@{domain}>",  # receivers drop duplicates
            "X-Valhalla-Topic": notification.topic or "direct",
        },
    )


def send_email(notification: "NotificationOutbox", channel: "NotificationChannel") -> None:
    message = email_message(notification, channel)
    connection = getattr(_smtp, "connection", None)
    try:
        if connection is None:
            timeout = getattr(settings, "EMAIL_TIMEOUT", None) or settings.NOTIFY_HTTP_TIMEOUT
            with get_connection(fail_silently=False, timeout=timeout) as single:
                sent = single.send_messages([message])
        else:
            sent = _send_in_session(connection, message)
    except BadHeaderError as error:
        raise TransportError(f"invalid email header: {error}", permanent=True) from error
    except (smtplib.SMTPException, OSError) as error:
        raise TransportError(f"SMTP: {type(error).__name__}: {error}") from error
    if not sent:
        raise TransportError("the email backend sent nothing")


def _send_in_session(connection: BaseEmailBackend, message: EmailMessage) -> int:
    try:
        connection.open()  # a no-op while the session's connection is open
        return connection.send_messages([message])
    except (smtplib.SMTPServerDisconnected, OSError):
        connection.close()  # the next email reconnects
        raise


# --- webhooks -----------------------------------------------------------------------------


def webhook_body(notification: "NotificationOutbox", channel: "NotificationChannel") -> str:
    """The Standard Webhooks envelope: {"type", "timestamp", "data"}."""
    envelope = {
        "type": notification.topic or "notification",
        "timestamp": notification.created_at.isoformat(),
        "data": {
            "id": notification.pk,
            "message_id": str(notification.message_id),
            "channel": channel.name,
            "subject": notification.subject,
            "body": notification.body,
            "payload": notification.payload,
        },
    }
    return json.dumps(envelope, cls=DjangoJSONEncoder, separators=(",", ":"))


def signed_headers(*, secret: str, message_id: str, body: str) -> dict[str, str]:
    """webhook-id, webhook-timestamp and webhook-signature per the Standard Webhooks spec."""
    moment = datetime.now(UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, moment, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


_resolved: dict[tuple[object, str, int], list[str] | TransportError] = {}
_resolved_lock = threading.Lock()
_batch = threading.local()
MAX_RESOLVED = 4096


@contextmanager
def batch(key: object) -> Iterator[None]:
    """Within the block, this thread shares DNS answers with every thread of batch `key`.

    Each host is then resolved once per batch; outside a batch, on every delivery.
    """
    _batch.key = key
    try:
        yield
    finally:
        _batch.key = None


def _lookup(host: str, port: int) -> list[str]:
    key = (getattr(_batch, "key", None), host, port)
    known = None
    if key[0] is not None:
        with _resolved_lock:
            known = _resolved.get(key)
    if known is None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            # A host name resolves to AF_INET and AF_INET6 addresses: sockaddr[0] is a string.
            known = [cast(str, info[4][0]) for info in infos]
        except (socket.gaierror, UnicodeError) as error:
            known = TransportError(f"cannot resolve {host}: {error}")
        if key[0] is not None:
            with _resolved_lock:
                if len(_resolved) >= MAX_RESOLVED:
                    _resolved.clear()
                _resolved[key] = known
    if isinstance(known, TransportError):
        raise TransportError(str(known))
    return known


def resolve_checked(host: str, port: int) -> str:
    """The address to connect to for `host`, if every address it has is allowed.

    Within a batch the answer is shared; the check runs on every call.
    """
    addresses = _lookup(host, port)
    for address in addresses:
        ip = literal_ip(address.split("%", 1)[0])
        if ip is None or not address_allowed(ip):
            raise AddressRefused(
                f"{host} resolves to {address}, a private, loopback, link-local or reserved "
                "address (allow it in NOTIFY_WEBHOOK_ALLOWED_NETWORKS)"
            )
    if not addresses:
        raise TransportError(f"{host} has no address")
    return addresses[0]


class _PinnedBackend(httpcore.SyncBackend):
    """Connects to one address whatever the URL's host would resolve to now."""

    def __init__(self, address: str) -> None:
        self.address = address

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        return super().connect_tcp(self.address, port, timeout, local_address, socket_options)


class PinnedTransport(httpx.HTTPTransport):
    """An httpx transport bound to a checked address, so DNS rebinding cannot move it.

    TLS still uses the URL's host name for SNI and certificate verification. Its pool keeps
    connections alive, all of them to that one address.
    """

    def __init__(self, address: str, *, max_connections: int = 1) -> None:
        context = tls_context(settings.NOTIFY_CA_BUNDLE)
        super().__init__(verify=context)
        # httpx has no public hook for the network backend; httpcore's pool takes one.
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            network_backend=_PinnedBackend(address),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
        )


MAX_CLIENTS = 256
_clients: "OrderedDict[tuple[str, ...], httpx.Client]" = OrderedDict()
_clients_lock = threading.Lock()


def pinned_client(origin: tuple[str, str, int], address: str) -> httpx.Client:
    """A kept-alive client for one receiver (scheme, host, port) on one checked address.

    Clients live for the process, so connections survive from batch to batch; the least
    recently used one is closed beyond MAX_CLIENTS.
    """
    key = (*map(str, origin), address, settings.NOTIFY_CA_BUNDLE)
    with _clients_lock:
        client = _clients.get(key)
        if client is not None:
            _clients.move_to_end(key)
            return client
        client = httpx.Client(
            transport=PinnedTransport(address, max_connections=settings.NOTIFY_CONCURRENCY),
            follow_redirects=False,
            trust_env=False,
        )
        _clients[key] = client
        evicted = _clients.popitem(last=False)[1] if len(_clients) > MAX_CLIENTS else None
    if evicted is not None:
        evicted.close()
    return client


@cache
def tls_context(ca_bundle: str = "") -> ssl.SSLContext:
    """A verifying TLS context per CA bundle (certifi's when empty): building one costs ~0.1 s."""
    return ssl.create_default_context(cafile=ca_bundle or certifi.where())


def post_pinned(url: str, *, content: str, headers: dict[str, str]) -> tuple[int, str, str]:
    """POST to `url` on its checked address, no redirects; (status, location, body start)."""
    parsed = httpx.URL(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    address = resolve_checked(parsed.host, port)
    client = pinned_client((parsed.scheme, parsed.host, port), address)
    timeout = settings.NOTIFY_HTTP_TIMEOUT
    try:
        with client.stream(
            "POST", parsed, content=content, headers=headers, timeout=timeout
        ) as response:
            start = _read_start(response)
            return response.status_code, response.headers.get("location", ""), start
    except httpx.HTTPError as error:
        raise TransportError(f"{type(error).__name__}: {error or 'no detail'}") from error


def _read_start(response: httpx.Response) -> str:
    """The first bytes of the body, for last_error; a huge body is never read whole."""
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= ERROR_BODY_BYTES:
            break
    return b"".join(chunks)[:ERROR_BODY_BYTES].decode("utf-8", "replace")


def check_status(status: int, location: str, body: str) -> None:
    if 200 <= status < 300:
        return
    if status == 410:
        raise GoneError("HTTP 410 Gone: the receiver asked for no more deliveries")
    if 300 <= status < 400:
        raise TransportError(f"HTTP {status}: redirect to {location or '?'} not followed")
    raise TransportError(f"HTTP {status}: {body.strip()[:200]}")


def send_webhook(notification: "NotificationOutbox", channel: "NotificationChannel") -> None:
    if not channel.secret:  # sealed under a SECRET_KEY that is no longer configured
        raise TransportError(
            "the channel's signing secret cannot be unsealed: put the previous SECRET_KEY in "
            "SECRET_KEY_FALLBACKS, or rotate the channel's secret"
        )
    body = webhook_body(notification, channel)
    headers = signed_headers(
        secret=channel.secret, message_id=str(notification.message_id), body=body
    )
    check_status(*post_pinned(channel.target, content=body, headers=headers))


# --- SMS ----------------------------------------------------------------------------------


class SmsBackend(Protocol):
    def send(self, *, to: str, body: str, message_id: str) -> None:
        """Send one text; raise TransportError on failure."""


class ConsoleSmsBackend:
    """Development default: writes the text to the log instead of sending it."""

    def send(self, *, to: str, body: str, message_id: str) -> None:
        logger.info("sms %s to %s: %s", message_id, to, body)


class HttpSmsBackend:
    """A generic HTTP SMS gateway: POST JSON {to, from, body, id} with a Bearer token."""

    def send(self, *, to: str, body: str, message_id: str) -> None:
        if not settings.NOTIFY_SMS_API_URL:
            raise TransportError("NOTIFY_SMS_API_URL is not set", permanent=True)
        message = {"to": to, "from": settings.NOTIFY_SMS_SENDER, "body": body, "id": message_id}
        headers = {"user-agent": USER_AGENT, "idempotency-key": message_id}
        if settings.NOTIFY_SMS_API_TOKEN:
            headers["authorization"] = f"Bearer {settings.NOTIFY_SMS_API_TOKEN}"
        try:
            response = httpx.post(
                settings.NOTIFY_SMS_API_URL,
                json=message,
                headers=headers,
                timeout=settings.NOTIFY_HTTP_TIMEOUT,
                follow_redirects=False,
                verify=tls_context(settings.NOTIFY_CA_BUNDLE),
            )
        except httpx.HTTPError as error:
            raise TransportError(f"SMS gateway: {type(error).__name__}: {error}") from error
        if not response.is_success:  # a gateway's 410 says nothing about the recipient
            raise TransportError(f"SMS gateway: HTTP {response.status_code}: {response.text[:200]}")


def sms_backend_class() -> Callable[[], SmsBackend]:
    """The class NOTIFY_SMS_BACKEND names; ImproperlyConfigured naming the variable if unusable."""
    path = settings.NOTIFY_SMS_BACKEND
    try:
        backend = import_string(path)
    except Exception as error:  # no such module or name, or the module fails to import
        raise ImproperlyConfigured(
            f"NOTIFY_SMS_BACKEND: cannot import {path!r}: {type(error).__name__}: {error}"
        ) from error
    if not callable(backend) or not callable(getattr(backend, "send", None)):
        raise ImproperlyConfigured(f"NOTIFY_SMS_BACKEND: {path!r} is not a class with send()")
    return cast(Callable[[], SmsBackend], backend)


def send_sms(notification: "NotificationOutbox", channel: "NotificationChannel") -> None:
    backend = sms_backend_class()()
    text = notification.subject
    if notification.body:
        text = f"{text}\n{notification.body}" if text else notification.body
    backend.send(
        to=channel.target, body=text[:SMS_MAX_CHARS], message_id=str(notification.message_id)
    )

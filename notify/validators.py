"""What a channel's target and event patterns must look like; shared by services and admin."""

import ipaddress
import re
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator

from notify import addresses

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
TOPIC_PATTERN = re.compile(r"^[A-Za-z0-9_.*?\[\]!-]{1,128}$")
TOPIC = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
MAX_PATTERNS = 50
# The topics the project emits, offered as checkboxes in the admin (patterns may name others).
KNOWN_TOPICS = (
    "admin_ops.executed",
    "admin_ops.refused",
    "client.activated",
    "client.deactivated",
    "export.completed",
    "export.failed",
    "export.requested",
    "maintenance.mode_changed",
    "maintenance.mode_stuck",
    "notify.channel_disabled",
    "notify.test",
    "ratelimit.exceeded",
)


def topic_choices() -> list[tuple[str, str]]:
    """Everything, each family of topics (a wildcard), then each known topic."""
    families = sorted({topic.split(".", 1)[0] for topic in KNOWN_TOPICS})
    return [
        ("*", "* (every event)"),
        *[(f"{family}.*", f"{family}.* (every {family} event)") for family in families],
        *[(topic, topic) for topic in KNOWN_TOPICS],
    ]


_email = EmailValidator()
_url = URLValidator(schemes=["http", "https"])


def target_error(channel_type: str, target: str) -> str | None:
    """Why `target` does not suit a channel of `channel_type`, or None when it does."""
    checks = {"email": _email_error, "webhook": _url_error, "sms": _phone_error}
    check = checks.get(channel_type)
    if check is None:
        return None  # an unknown type is reported on channel_type itself
    if not target or target != target.strip():
        return "Enter a target without surrounding spaces."
    return check(target)


def _email_error(target: str) -> str | None:
    try:
        _email(target)
    except ValidationError:
        return "Enter a valid email address, e.g. owner@example.com."
    return None


def _url_error(target: str) -> str | None:
    try:
        _url(target)
    except ValidationError:
        return "Enter a valid http(s) URL, e.g. https://hooks.example.com/valhalla."
    parts = urlsplit(target)
    if parts.username or parts.password:
        return "Put no credentials in the URL: receivers verify the signature instead."
    if parts.fragment:
        return "A webhook URL cannot have a #fragment."
    host = parts.hostname or ""
    ip = literal_ip(host) or (ipaddress.ip_address("127.0.0.1") if host == "localhost" else None)
    if ip is not None and not address_allowed(ip):
        return (
            f"{host} is a private, loopback, link-local or reserved address; "
            "allow its network in NOTIFY_WEBHOOK_ALLOWED_NETWORKS to use it."
        )
    return None


def _phone_error(target: str) -> str | None:
    if E164.match(target):
        return None
    return "Enter an E.164 phone number: '+', country code and number, e.g. +4915112345678."


def events_error(events: object) -> str | None:
    """Why `events` is not a list of topic patterns, or None when it is."""
    if not isinstance(events, list):
        return 'Give a list of topic patterns, e.g. ["maintenance.*", "ratelimit.exceeded"].'
    if len(events) > MAX_PATTERNS:
        return f"At most {MAX_PATTERNS} patterns."
    for pattern in events:
        if not isinstance(pattern, str) or not TOPIC_PATTERN.match(pattern):
            return (
                f"Invalid pattern {pattern!r}: use 1-128 letters, digits, '.', '_', '-' "
                "and the wildcards '*', '?', '[...]'."
            )
    return None


IPAddress = addresses.IPAddress


def literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def address_allowed(ip: IPAddress) -> bool:
    """Globally reachable unicast (IPv4 inside IPv6 unwrapped), or inside an allowed network."""
    return addresses.allowed(ip, settings.NOTIFY_WEBHOOK_ALLOWED_NETWORKS)

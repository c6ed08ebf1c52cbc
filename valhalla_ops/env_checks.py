"""Validators for settings read from the environment (used by valhalla_ops.settings).

They raise marshmallow's ValidationError, and environs stops start-up with a message naming
the variable. A validator that only returns False is ignored. Nothing here imports Django
settings: this module is loaded while they are being built.
"""

import ipaddress
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import ValidationError
from marshmallow.validate import URL, Range

POSITIVE = Range(min=0, min_inclusive=False)
AT_LEAST_ONE = Range(min=1)
NOT_NEGATIVE = Range(min=0)
HTTP_URL = URL(schemes={"http", "https"}, require_tld=False)
# The schemes dj-email-url maps to a backend; the SMTP ones need a host.
EMAIL_SCHEMES = {"smtp", "smtps", "submission", "submit", "console", "file", "memory", "dummy"}
SMTP_SCHEMES = {"smtp", "smtps", "submission", "submit"}
# dj-email-url's true values for ?tls= and ?ssl=; it reads anything else as false.
EMAIL_TRUE = {"1"} | {
    form for word in ("y", "yes", "t", "true", "on") for form in (word, word.title(), word.upper())
}
EMAIL_FALSE = {"0", "n", "no", "f", "false", "off"}


def networks(values: list[str]) -> bool:
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError as error:
            raise ValidationError(str(error)) from error
    return True


def readable_file(path: str) -> bool:
    if not path or Path(path).is_file():
        return True
    raise ValidationError(f"{path} is not a file")


def optional_http_url(url: str) -> bool:
    if url:
        HTTP_URL(url)
    return True


def port(url: str) -> int | None:
    try:
        return urlsplit(url).port
    except ValueError as error:
        raise ValidationError(str(error)) from error


def email_url(url: str) -> bool:
    """A URL dj-email-url turns into a working backend (empty: the console backend)."""
    if not url:
        return True
    parts = urlsplit(url)
    if parts.scheme not in EMAIL_SCHEMES:
        known = ", ".join(sorted(EMAIL_SCHEMES))
        raise ValidationError(f"unknown scheme {parts.scheme!r} (known: {known})")
    if parts.scheme in SMTP_SCHEMES and not parts.hostname:
        raise ValidationError(f"a {parts.scheme}:// URL needs a host")
    if parts.scheme == "file" and not parts.path.strip("/"):
        raise ValidationError("a file:// URL needs a directory")
    port(url)
    query = parse_qs(parts.query)
    for flag in ("tls", "ssl"):
        if any(v not in EMAIL_TRUE and v.lower() not in EMAIL_FALSE for v in query.get(flag, [])):
            raise ValidationError(f"?{flag}= takes True or False")
    if any(not value.isdigit() or int(value) < 1 for value in query.get("timeout", [])):
        raise ValidationError("?timeout= takes a positive whole number of seconds")
    return True


def redis_url(url: str) -> bool:
    if not url:
        return True
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise ValidationError("must start with redis://, rediss:// or unix://")
    port(url)
    database = parts.path.strip("/")
    if parts.scheme != "unix" and database and not database.isdigit():
        raise ValidationError(f"the database {database!r} is not a number")
    return True


def time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError) as error:
        raise ValidationError(f"unknown time zone {name!r}") from error
    return True


def origins(origins: list[str]) -> bool:
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValidationError(f"{origin!r} is not scheme://host, e.g. https://ops.example.com")
    return True


def path_prefixes(prefixes: list[str]) -> bool:
    # An empty entry (a stray comma) would match every path.
    for prefix in prefixes:
        if not prefix.startswith("/"):
            raise ValidationError(f"{prefix!r} does not start with /")
    return True


def sender(value: str) -> bool:
    local, at, domain = parseaddr(value)[1].rpartition("@")
    if not (local and at and domain) or any(char in value for char in "\r\n"):
        raise ValidationError(f"{value!r} is not an email address")
    return True


def dotted_path(path: str) -> bool:
    parts = path.split(".")
    if len(parts) < 2 or not all(part.isidentifier() for part in parts):
        raise ValidationError(f"{path!r} is not a dotted path such as package.module.Class")
    return True

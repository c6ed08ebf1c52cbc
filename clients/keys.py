"""API keys: typed, greppable, checksummed; stored only as a keyed hash.

A generated key reads `vo_live_<32 base62>` + 6 base62 characters of CRC32 over the rest,
so a scanner can spot a leaked key and a mistyped key is refused without a database hit.
"""

import hmac
import secrets
import string
import zlib
from hashlib import sha256

from django.conf import settings

ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
PREFIXES = {"live": "vo_live_", "test": "vo_test_"}
TYPED_PREFIX = "vo_"
RANDOM_LENGTH = 32
CHECKSUM_LENGTH = 6
TYPED_LENGTH = len("vo_live_") + RANDOM_LENGTH + CHECKSUM_LENGTH
MIN_SUPPLIED_LENGTH = 8
MAX_KEY_LENGTH = 256
DISPLAY_LENGTH = 12


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rest = divmod(number, 62)
        digits.append(ALPHABET[rest])
    return "".join(reversed(digits))


def checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), CHECKSUM_LENGTH)


def typed_key(kind: str, random_part: str) -> str:
    """`vo_<kind>_` + the random part + its checksum."""
    body = PREFIXES[kind] + random_part
    return body + checksum(body)


def generate_key(kind: str = "live") -> str:
    return typed_key(kind, "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH)))


def is_typed(key: str) -> bool:
    return key.startswith(TYPED_PREFIX)


def has_valid_checksum(key: str) -> bool:
    """A typed key is well formed: known prefix, length, alphabet and checksum."""
    if len(key) != TYPED_LENGTH or key[: len("vo_live_")] not in PREFIXES.values():
        return False
    body, check = key[:-CHECKSUM_LENGTH], key[-CHECKSUM_LENGTH:]
    random_part = body[len("vo_live_") :]
    if any(char not in ALPHABET for char in random_part):
        return False
    return hmac.compare_digest(check, checksum(body))


def plausible(key: str) -> bool:
    """Worth a lookup: a typed key with its checksum right, or a supplied key of sane shape."""
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable() or " " in key:
        return False
    if is_typed(key):
        return has_valid_checksum(key)
    return len(key) >= MIN_SUPPLIED_LENGTH


def hash_key(key: str) -> str:
    """HMAC-SHA256 under API_KEY_PEPPER: a stolen table is useless without the pepper."""
    return hmac.new(settings.API_KEY_PEPPER.encode(), key.encode(), sha256).hexdigest()


def display_prefix(key: str) -> str:
    return key[:DISPLAY_LENGTH] if is_typed(key) else key[:4]


def kind_for(client_type: str) -> str:
    return "test" if client_type.lower() in {"test", "testing", "sandbox"} else "live"

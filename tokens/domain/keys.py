"""Secret keys, digests, encryption at rest, callback HMACs and token ids. No database access."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
import time

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

KEY_PREFIXES = {"dev": "tr_dev_", "staging": "tr_stg_", "prod": "tr_prod_"}
# 43 URL-safe characters = 256 bits. Never "sk_…": the official SDK treats tr_<env>_sk_ specially.
_KEY_RANDOM_BYTES = 32
VISIBLE_PREFIX_LENGTH = 12
_BASE36 = string.digits + string.ascii_lowercase


def generate_secret_key(environment_slug: str) -> str:
    while True:
        body = secrets.token_urlsafe(_KEY_RANDOM_BYTES)
        if not body.startswith("sk_"):
            return KEY_PREFIXES[environment_slug] + body


def looks_like_secret_key(value: str) -> bool:
    return any(value.startswith(prefix) for prefix in KEY_PREFIXES.values())


def key_digest(secret_key: str) -> str:
    """Lookup digest. Keys carry 256 random bits, so a fast keyed hash is enough (no KDF)."""
    return hmac.new(settings.SECRET_KEY.encode(), secret_key.encode(), hashlib.sha256).hexdigest()


def _fernet() -> Fernet:
    derived = hashlib.sha256(b"waitpoints.api-key-encryption:" + settings.SECRET_KEY.encode())
    return Fernet(base64.urlsafe_b64encode(derived.digest()))


def encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def decrypt(value: str) -> str | None:
    try:
        return _fernet().decrypt(value.encode()).decode()
    except InvalidToken:
        return None


def random_secret() -> str:
    return secrets.token_urlsafe(32)


def callback_hash(*, callback_secret: str, internal_id: str) -> str:
    """HMAC-SHA256 hex over the internal id, as upstream, but keyed by the callback secret."""
    return hmac.digest(callback_secret.encode(), internal_id.encode(), "sha256").hex()


def callback_hash_matches(*, callback_secret: str, internal_id: str, given: str) -> bool:
    expected = callback_hash(callback_secret=callback_secret, internal_id=internal_id)
    return hmac.compare_digest(expected.encode(), given.encode())


def personal_hash(*, callback_secret: str, internal_id: str, address: str) -> str:
    """The HMAC of one recipient's personal link: the token and the address it was sent to,
    keyed like the callback URL (so rotating API keys breaks no link)."""
    message = f"personal:{internal_id}:{address.strip().lower()}".encode()
    return hmac.new(callback_secret.encode(), message, hashlib.sha256).hexdigest()


def personal_hash_matches(
    *, callback_secret: str, internal_id: str, address: str, given: str
) -> bool:
    expected = personal_hash(
        callback_secret=callback_secret, internal_id=internal_id, address=address
    )
    return hmac.compare_digest(expected.encode(), given.encode())


def _base36(number: int, width: int) -> str:
    digits = []
    while number:
        number, rest = divmod(number, 36)
        digits.append(_BASE36[rest])
    return "".join(reversed(digits)).rjust(width, "0")[-width:]


def generate_token_id() -> str:
    """A 25-character cuid-like id: 'c', 8 base36 chars of milliseconds, 16 random chars.

    Time-ordered, so "newest first" is simply ``ORDER BY id DESC`` for keyset pagination.
    """
    millis = int(time.time() * 1000)
    # One draw of 16 uniform base-36 digits (as 16 draws of one would be), not 16 reads of
    # the system's random source: those were 4% of a create's CPU.
    random_part = _base36(secrets.randbelow(36**16), 16)
    return "c" + _base36(millis, 8) + random_part


FRIENDLY_PREFIX = "waitpoint_"


def friendly_id(internal_id: str) -> str:
    return FRIENDLY_PREFIX + internal_id


def parse_token_id(value: str) -> str | None:
    """Accept ``waitpoint_<id>`` or a bare id (as upstream); None when it cannot be an id."""
    if value.startswith(FRIENDLY_PREFIX):
        value = value[len(FRIENDLY_PREFIX) :]
    if 1 <= len(value) <= 40 and all(ch in _BASE36 for ch in value):
        return value
    return None


_NANOID_ALPHABET = string.ascii_letters + string.digits + "_-"


def placeholder_idempotency_key(internal_id: str) -> str:
    """What retrieve shows as ``idempotencyKey`` when the caller gave none (or it rotated):
    upstream stores a random 24-character nanoid there. Ours is derived (keyed by SECRET_KEY),
    so it is stable across reads without a column, and it deduplicates nothing."""
    digest = hmac.digest(
        settings.SECRET_KEY.encode(),
        f"waitpoints.idempotency-placeholder:{internal_id}".encode(),
        "sha256",
    )
    return "".join(_NANOID_ALPHABET[byte & 63] for byte in digest[:24])


def idempotency_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()

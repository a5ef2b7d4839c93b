"""Webhook signatures, as jambonz signs its requests.

`Jambonz-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<payload>">`, where the
payload is the raw body of a POST or the raw query string of a GET, keyed with the
account's webhook secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

HEADER = "Jambonz-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


def new_webhook_secret() -> str:
    """A fresh secret: 32 random bytes as hex."""
    return secrets.token_hex(32)


def sign(secret: str, payload: bytes, timestamp: int | None = None) -> str:
    """The header value for a payload sent now (or at `timestamp`)."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify(
    secret: str,
    payload: bytes,
    header: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: int | None = None,
) -> bool:
    """What a receiver does: the signature matches and is recent enough."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    current = int(time.time()) if now is None else now
    if abs(current - t) > tolerance:
        return False
    expected = sign(secret, payload, t).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))

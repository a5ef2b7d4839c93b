"""SIDs and API keys: how they are made, and how a key is stored (only as a hash)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

KEY_PREFIX_MARK = "ck_"


def new_account_sid() -> str:
    """`AC` + 32 lowercase hex digits."""
    return "AC" + secrets.token_hex(16)


def new_call_sid() -> str:
    """`CA` + 32 lowercase hex digits."""
    return "CA" + secrets.token_hex(16)


@dataclass(frozen=True)
class NewKey:
    """A freshly made API key: shown once, then only its hash is kept."""

    prefix: str
    secret: str

    @property
    def key_hash(self) -> str:
        return hash_key(self.secret)


def new_api_key() -> NewKey:
    """`ck_<12 hex>.<43 url-safe characters>`; the part before the dot is its public prefix."""
    prefix = KEY_PREFIX_MARK + secrets.token_hex(6)
    return NewKey(prefix=prefix, secret=f"{prefix}.{secrets.token_urlsafe(32)}")


def key_prefix(key: str) -> str | None:
    """The public prefix of a well-formed key, else None."""
    prefix, dot, rest = key.partition(".")
    if not dot or not rest or not prefix.startswith(KEY_PREFIX_MARK) or len(prefix) != 15:
        return None
    return prefix


def hash_key(key: str) -> str:
    """The stored form of a key. Keys carry 256 random bits, so one SHA-256 suffices."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def key_matches(key: str, stored_hash: str) -> bool:
    """Compare in constant time."""
    return hmac.compare_digest(hash_key(key), stored_hash)

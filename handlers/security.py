"""Bearer API keys: who is calling. Keys are looked up by their public prefix and compared
by hash in constant time; a revoked key stops working at once."""

from __future__ import annotations

from typing import Any

from calls_api.identity import key_matches, key_prefix
from calls_api.store import Store


async def authenticate(store: Store, token: str) -> dict[str, Any] | None:
    """The token info of a valid, unrevoked key (`sub` is its account), else None."""
    prefix = key_prefix(token)
    if prefix is None:
        return None
    key = await store.get_api_key(prefix)
    if key is None or key.revoked_at is not None or not key_matches(token, key.key_hash):
        return None
    return {"sub": key.account_sid, "key_prefix": key.prefix}

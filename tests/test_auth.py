"""API keys: their form, how they are stored, and who they let in."""

from __future__ import annotations

import re

import pytest

from calls_api.admin import create_account, create_key, revoke_key
from calls_api.identity import hash_key, key_matches, key_prefix, new_api_key
from calls_api.store import open_store
from handlers.security import authenticate

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_keys_have_a_public_prefix_and_a_secret_part() -> None:
    key = new_api_key()
    assert re.fullmatch(r"ck_[0-9a-f]{12}\.[A-Za-z0-9_-]{43}", key.secret)
    assert key_prefix(key.secret) == key.prefix == key.secret.split(".")[0]
    assert key.key_hash == hash_key(key.secret)
    assert key.secret not in key.key_hash
    assert new_api_key().secret != key.secret


@pytest.mark.parametrize(
    "token", ["", "ck_", "ck_0123456789ab", "ck_0123456789ab.", "xx_0123456789ab.s", "ck_1.s"]
)
def test_malformed_keys_have_no_prefix(token: str) -> None:
    assert key_prefix(token) is None


def test_key_matches_only_its_own_hash() -> None:
    key = new_api_key()
    assert key_matches(key.secret, key.key_hash)
    assert not key_matches(key.secret + "x", key.key_hash)
    assert not key_matches(new_api_key().secret, key.key_hash)


async def test_authenticate_admits_only_live_keys_of_an_account(database_url: str) -> None:
    store = open_store(database_url)
    await store.open()
    try:
        account, key = await create_account(store, "a")
        second = await create_key(store, account.account_sid)
        assert await authenticate(store, key.secret) == {
            "sub": account.account_sid,
            "key_prefix": key.prefix,
        }
        assert (await authenticate(store, second.secret) or {}).get("sub") == account.account_sid
        forged = key.prefix + "." + "A" * 43
        for token in (forged, "not a key", new_api_key().secret, key.secret[:-1]):
            assert await authenticate(store, token) is None, token
        await revoke_key(store, second.prefix)
        assert await authenticate(store, second.secret) is None
        assert await authenticate(store, key.secret) is not None
    finally:
        await store.close()

"""A fresh database with one account and API key for a benchmark run."""

from __future__ import annotations

import asyncio

from calls_api.admin import create_account
from calls_api.store.sqlite import SQLiteStore


async def new_account(path: str) -> tuple[str, str]:
    """(account_sid, api_key) in a new SQLite database at `path`."""
    store = SQLiteStore(path)
    await store.open()
    try:
        account, key = await create_account(store, "bench")
    finally:
        await store.close()
    return account.account_sid, key.secret


def fresh_account(path: str) -> tuple[str, str]:
    """new_account, from synchronous code."""
    return asyncio.run(new_account(path))

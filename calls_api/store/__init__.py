"""Persistence behind one interface; SQLite embedded by default."""

from __future__ import annotations

from typing import Protocol

from calls_api.store.records import Account, ApiKey, CallRecord


class StoreUnavailable(Exception):
    """The database cannot be used right now (unreachable, locked, read-only, full)."""


class Store(Protocol):
    """Everything the service keeps. Implementations apply their migrations in open()."""

    async def open(self) -> None:
        """Connect and bring the schema up to date."""

    async def close(self) -> None:
        """Release the connection."""

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""

    async def schema_version(self) -> int:
        """The newest migration applied."""

    async def count_accounts(self) -> int:
        """How many accounts exist."""

    async def create_account(self, account: Account) -> None:
        """Store a new account."""

    async def get_account(self, account_sid: str) -> Account | None:
        """The account, or None."""

    async def add_api_key(self, key: ApiKey) -> None:
        """Store a new API key (only its hash)."""

    async def get_api_key(self, prefix: str) -> ApiKey | None:
        """The key with this prefix, revoked or not, or None."""

    async def revoke_api_key(self, prefix: str) -> bool:
        """Revoke the key; False when there is no such active key."""

    async def create_call(self, call: CallRecord) -> None:
        """Store a new call."""

    async def get_call(self, account_sid: str, call_sid: str) -> CallRecord | None:
        """The account's call, or None (also when it belongs to another account)."""


def open_store(database_url: str, *, timeout: float = 5.0) -> Store:
    """The store for a database URL (not yet opened)."""
    if database_url.startswith("sqlite:"):
        from calls_api.store.sqlite import SQLiteStore

        return SQLiteStore.from_url(database_url, timeout=timeout)
    scheme = database_url.split(":", 1)[0]
    raise ValueError(
        f"unsupported CALLS_DATABASE_URL scheme {scheme!r}: use sqlite:///path/to/calls.db"
    )


__all__ = ["Account", "ApiKey", "CallRecord", "Store", "StoreUnavailable", "open_store"]

"""Persistence behind one interface; SQLite embedded by default."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from calls_api.store.records import (
    Account,
    ApiKey,
    CallFilter,
    CallRecord,
    DeliveryAttempt,
    EventRecord,
    IdempotentCreate,
    NewEvent,
)


class StoreUnavailable(Exception):
    """The database cannot be used right now (unreachable, locked, read-only, full)."""


class IdempotencyConflict(Exception):
    """Another request stored a call under the same Idempotency-Key first."""


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

    async def set_webhook_secret(self, account_sid: str, secret: str) -> bool:
        """Replace the account's webhook secret; False when there is no such account."""

    async def create_call(
        self, call: CallRecord, idempotency: tuple[str, IdempotentCreate] | None = None
    ) -> None:
        """Store a new call, and with it what its Idempotency-Key answers (one transaction).

        A key already used by the account raises IdempotencyConflict.
        """

    async def get_idempotent_create(
        self, account_sid: str, key: str, since: datetime
    ) -> IdempotentCreate | None:
        """What an Idempotency-Key of the account answered, if it was used after `since`."""

    async def forget_idempotent_creates(self, before: datetime) -> int:
        """Drop remembered keys older than `before`; returns how many."""

    async def get_call(self, account_sid: str, call_sid: str) -> CallRecord | None:
        """The account's call, or None (also when it belongs to another account)."""

    async def list_calls(
        self,
        account_sid: str,
        where: CallFilter,
        limit: int,
        after: tuple[datetime, str] | None = None,
    ) -> list[CallRecord]:
        """The account's calls, newest first, after the (date_created, call_sid) given."""

    async def update_call(
        self, old: CallRecord, new: CallRecord, event: NewEvent | None = None, *, hold: bool = False
    ) -> bool:
        """Write `new` if the stored call is still at `old`'s version; record the event.

        The write gives up any claim on the call, unless `hold` (the engine goes straight on).
        """

    async def delete_call(self, account_sid: str, call_sid: str) -> bool:
        """Remove the call and its events; False when there was none."""

    async def claim_due_calls(
        self, owner: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[CallRecord]:
        """Claim calls whose next engine step is due and that no live lease holds: each is
        `owner`'s alone until `lease_until` or its next write."""

    async def claim_due_events(
        self, owner: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[EventRecord]:
        """Claim due pending events, each the earliest unfinished one of its call, that no
        live lease holds: each is `owner`'s alone until `lease_until` or its attempt."""

    async def release_claims(self, owner: str) -> None:
        """Give up every claim `owner` holds."""

    async def next_due_time(self) -> datetime | None:
        """When the next call step or event delivery can be claimed."""

    async def record_attempt(
        self,
        event: EventRecord,
        attempt: DeliveryAttempt,
        state: str,
        next_attempt_at: datetime | None,
        owner: str | None = None,
    ) -> bool:
        """Record a delivery attempt and the event's new state, releasing the claim; with
        `owner`, only if that claim still holds (else False and nothing is written)."""

    async def list_events(self, account_sid: str, call_sid: str) -> list[EventRecord]:
        """The call's events in order, each with its delivery attempts."""


def open_store(database_url: str, *, timeout: float = 5.0, pool_size: int = 10) -> Store:
    """The store for a database URL (not yet opened)."""
    if database_url.startswith("sqlite:"):
        from calls_api.store.sqlite import SQLiteStore

        return SQLiteStore.from_url(database_url, timeout=timeout)
    if database_url.startswith(("postgresql:", "postgres:")):
        from calls_api.store.postgres import PostgresStore

        return PostgresStore(database_url, timeout=timeout, pool_size=pool_size)
    scheme = database_url.split(":", 1)[0]
    raise ValueError(
        f"unsupported CALLS_DATABASE_URL scheme {scheme!r}: use sqlite:///path/to/calls.db "
        "or postgresql://user@host:5432/database"
    )


__all__ = [
    "Account",
    "ApiKey",
    "CallRecord",
    "IdempotencyConflict",
    "Store",
    "StoreUnavailable",
    "open_store",
]

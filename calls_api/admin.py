"""Accounts and API keys: what the CLI (and the tests) use to set a service up."""

from __future__ import annotations

from datetime import UTC, datetime

from calls_api.identity import NewKey, new_account_sid, new_api_key
from calls_api.signing import new_webhook_secret
from calls_api.store import Store
from calls_api.store.records import Account, ApiKey

DEV_ACCOUNT_NAME = "development"


class UnknownAccount(LookupError):
    """No account with that SID."""


async def create_account(store: Store, name: str) -> tuple[Account, NewKey]:
    """A new account and its first API key (the key's secret is only in the return value)."""
    account = Account(
        account_sid=new_account_sid(),
        name=name,
        date_created=datetime.now(UTC),
        webhook_secret=new_webhook_secret(),
    )
    await store.create_account(account)
    return account, await create_key(store, account.account_sid)


async def create_key(store: Store, account_sid: str) -> NewKey:
    """Another API key for an existing account."""
    if await store.get_account(account_sid) is None:
        raise UnknownAccount(f"no account {account_sid}")
    key = new_api_key()
    await store.add_api_key(
        ApiKey(
            prefix=key.prefix,
            account_sid=account_sid,
            key_hash=key.key_hash,
            date_created=datetime.now(UTC),
        )
    )
    return key


async def revoke_key(store: Store, prefix: str) -> bool:
    """Revoke a key by its prefix; it stops working on the next request."""
    return await store.revoke_api_key(prefix)


async def bootstrap_dev_account(store: Store) -> tuple[Account, NewKey] | None:
    """On an empty database, a development account and key; otherwise None."""
    if await store.count_accounts() > 0:
        return None
    return await create_account(store, DEV_ACCOUNT_NAME)


async def rotate_webhook_secret(store: Store, account_sid: str) -> str:
    """A new webhook secret for the account; events signed from now on use it."""
    secret = new_webhook_secret()
    if not await store.set_webhook_secret(account_sid, secret):
        raise UnknownAccount(f"no account {account_sid}")
    return secret

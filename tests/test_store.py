"""The SQLite store: migrations, isolation between accounts, keys, failures."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from calls_api.admin import create_account, create_key, revoke_key
from calls_api.identity import hash_key
from calls_api.store import StoreUnavailable, open_store
from calls_api.store.migrations import LATEST_VERSION
from calls_api.store.records import CallRecord
from calls_api.store.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def a_call(account_sid: str, call_sid: str = "CA" + "1" * 32) -> CallRecord:
    now = datetime.now(UTC)
    return CallRecord(
        call_sid=call_sid,
        account_sid=account_sid,
        from_="+15550000000",
        to="+15550000001",
        status="queued",
        direction="outbound",
        answer_url="https://example.com/a",
        event_url=None,
        event_method="POST",
        timeout=60,
        time_limit=None,
        tag={"k": ["v", 1]},
        headers={"X-A": "b"},
        date_created=now,
        date_updated=now,
    )


async def test_migrations_apply_once_and_record_their_version(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/nested/dir/calls.db"
    store = open_store(url)
    await store.open()
    assert await store.schema_version() == LATEST_VERSION
    await store.close()
    reopened = open_store(url)
    await reopened.open()  # must not try to apply migration 1 again
    assert await reopened.schema_version() == LATEST_VERSION
    await reopened.close()
    with sqlite3.connect(tmp_path / "nested/dir/calls.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == LATEST_VERSION


async def test_calls_round_trip_and_stay_within_their_account(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/calls.db")
    await store.open()
    mine, _ = await create_account(store, "mine")
    theirs, _ = await create_account(store, "theirs")
    call = a_call(mine.account_sid)
    await store.create_call(call)

    assert await store.get_call(mine.account_sid, call.call_sid) == call
    assert await store.get_call(theirs.account_sid, call.call_sid) is None
    assert await store.get_call(mine.account_sid, "CA" + "2" * 32) is None
    await store.close()


async def test_keys_are_stored_only_as_hashes_and_can_be_revoked(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/calls.db")
    await store.open()
    account, key = await create_account(store, "a")
    stored = await store.get_api_key(key.prefix)
    assert stored is not None
    assert stored.key_hash == hash_key(key.secret)
    assert key.secret not in (tmp_path / "calls.db").read_bytes().decode("latin-1")
    another = await create_key(store, account.account_sid)
    assert await revoke_key(store, another.prefix)
    assert not await revoke_key(store, another.prefix), "revoking twice reports nothing to do"
    revoked = await store.get_api_key(another.prefix)
    assert revoked is not None and revoked.revoked_at is not None
    still = await store.get_api_key(key.prefix)
    assert still is not None and still.revoked_at is None
    await store.close()


async def test_an_unusable_database_is_store_unavailable(tmp_path: Path) -> None:
    (tmp_path / "calls.db").mkdir()  # a directory where the file should be
    store = SQLiteStore(str(tmp_path / "calls.db"))
    with pytest.raises(StoreUnavailable):
        await store.open()
    closed = SQLiteStore(str(tmp_path / "other.db"))
    with pytest.raises(StoreUnavailable):
        await closed.ping()


async def test_a_read_only_database_refuses_writes_as_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    writer = SQLiteStore(str(path))
    await writer.open()
    account, _ = await create_account(writer, "a")
    await writer.close()
    reader = SQLiteStore(f"file:{path}?mode=ro")
    reader_db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    reader._db = reader_db  # a connection that can only read, as on a read-only volume
    with pytest.raises(StoreUnavailable, match="readonly"):
        await reader.create_call(a_call(account.account_sid))
    await reader.close()


def test_bad_urls_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        open_store("postgres://x")
    with pytest.raises(ValueError, match="sqlite:///"):
        open_store("sqlite://relative.db")

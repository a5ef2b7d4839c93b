"""The stores (SQLite and PostgreSQL): migrations and upgrades, isolation between accounts,
keys, claims and leases, failures."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from calls_api.admin import create_account, create_key, revoke_key
from calls_api.identity import hash_key
from calls_api.store import Store, StoreUnavailable, open_store
from calls_api.store.migrations import LATEST_VERSION
from calls_api.store.postgres import migrate as postgres_migrate
from calls_api.store.records import CallRecord, DeliveryAttempt, NewEvent
from calls_api.store.sqlite import SQLiteStore
from calls_api.store.sqlite import migrate as sqlite_migrate
from tests.conftest import postgres_schema, query

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


async def test_calls_round_trip_and_stay_within_their_account(database_url: str) -> None:
    store = open_store(database_url)
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
        open_store("mysql://x")
    with pytest.raises(ValueError, match="sqlite:///"):
        open_store("sqlite://relative.db")


# -- migrations: both dialects alike, and an upgrade from the previous version loses nothing --

OLD = "2026-01-02T03:04:05.123456Z"
OLD_TIME = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def columns(database_url: str) -> dict[str, list[str]]:
    """Each table's columns, in order, as the database reports them."""
    if database_url.startswith("sqlite"):
        tables = [
            r[0]
            for r in query(
                database_url,
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            )
        ]
        return {
            table: [r[1] for r in query(database_url, f"PRAGMA table_info({table})")]
            for table in tables
        }
    found: dict[str, list[str]] = {}
    for table, column in query(
        database_url,
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position",
    ):
        found.setdefault(table, []).append(column)
    return found


async def test_both_dialects_migrate_to_the_same_tables_and_columns(
    tmp_path: Path, postgres_server: str
) -> None:
    sqlite_url = f"sqlite:///{tmp_path}/calls.db"
    with postgres_schema(postgres_server) as postgres_url:
        for url in (sqlite_url, postgres_url):
            store = open_store(url)
            await store.open()
            assert await store.schema_version() == LATEST_VERSION
            await store.close()
        in_sqlite, in_postgres = columns(sqlite_url), columns(postgres_url)
    assert set(in_sqlite) == set(in_postgres)
    for table, names in in_sqlite.items():
        assert sorted(names) == sorted(in_postgres[table]), table
    assert "lease_until" in in_sqlite["calls"] and "claimed_by" in in_sqlite["events"]


async def migrate_to(database_url: str, version: int) -> None:
    """A database as the code of schema `version` left it."""
    if database_url.startswith("sqlite"):
        db = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            sqlite_migrate(db, up_to=version)
        finally:
            db.close()
        return
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await postgres_migrate(conn, up_to=version)


async def test_an_upgrade_from_the_previous_version_keeps_every_row(database_url: str) -> None:
    await migrate_to(database_url, LATEST_VERSION - 1)
    version = query(database_url, "SELECT MAX(version) FROM schema_migrations")[0][0]
    assert version == LATEST_VERSION - 1
    account_sid, call_sid = "AC" + "a" * 32, "CA" + "c" * 32
    # Rows as version 2 wrote them: an account, a key, a ringing call, two events (one
    # delivered after a failed try, one pending), a remembered Idempotency-Key.
    statements: list[tuple[str, tuple[object, ...]]] = [
        (
            "INSERT INTO accounts (account_sid, name, date_created, webhook_secret) "
            "VALUES (?, ?, ?, ?)",
            (account_sid, "old", OLD, "s" * 64),
        ),
        (
            "INSERT INTO api_keys (prefix, account_sid, key_hash, date_created) "
            "VALUES (?, ?, ?, ?)",
            ("ck_0123456789ab", account_sid, "h" * 64, OLD),
        ),
        (
            "INSERT INTO calls (call_sid, account_sid, from_number, to_number, status, "
            "direction, answer_url, event_url, event_method, timeout, time_limit, tag, headers, "
            "date_created, date_updated, answer_method, next_step, next_step_at, event_count, "
            "version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                call_sid,
                account_sid,
                "+15550000000",
                "+15550000001",
                "ringing",
                "outbound",
                "https://example.com/a",
                "https://example.com/e",
                "POST",
                60,
                None,
                '{"k":1}',
                None,
                OLD,
                OLD,
                "POST",
                "answer",
                OLD,
                2,
                2,
            ),
        ),
        (
            "INSERT INTO events (call_sid, account_sid, sequence, call_status, payload, url, "
            "method, state, attempts, next_attempt_at, date_created, delivered_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                call_sid,
                account_sid,
                1,
                "trying",
                '{"sequence":1}',
                "https://example.com/e",
                "POST",
                "delivered",
                2,
                None,
                OLD,
                OLD,
            ),
        ),
        (
            "INSERT INTO events (call_sid, account_sid, sequence, call_status, payload, url, "
            "method, state, attempts, next_attempt_at, date_created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                call_sid,
                account_sid,
                2,
                "ringing",
                '{"sequence":2}',
                "https://example.com/e",
                "POST",
                "pending",
                0,
                OLD,
                OLD,
            ),
        ),
        (
            "INSERT INTO delivery_attempts (event_id, attempted_at, http_status, error, "
            "latency_ms) SELECT event_id, ?, ?, ?, ? FROM events WHERE sequence = 1",
            (OLD, 500, None, 1.5),
        ),
        (
            "INSERT INTO delivery_attempts (event_id, attempted_at, http_status, error, "
            "latency_ms) SELECT event_id, ?, ?, ?, ? FROM events WHERE sequence = 1",
            (OLD, 200, None, 2.5),
        ),
        (
            "INSERT INTO idempotency_keys (account_sid, idempotency_key, request_hash, "
            "call_sid, response, date_created) VALUES (?, ?, ?, ?, ?, ?)",
            (account_sid, "key-1", "r" * 64, call_sid, "{}", OLD),
        ),
    ]
    for sql, params in statements:
        query(database_url, sql, params, fetch=False)

    store = open_store(database_url)
    await store.open()  # the new code applies what is missing
    try:
        assert await store.schema_version() == LATEST_VERSION
        account = await store.get_account(account_sid)
        assert account is not None and account.webhook_secret == "s" * 64
        assert account.date_created == OLD_TIME
        key = await store.get_api_key("ck_0123456789ab")
        assert key is not None and key.key_hash == "h" * 64 and key.revoked_at is None
        call = await store.get_call(account_sid, call_sid)
        assert call is not None
        assert (call.status, call.tag, call.next_step, call.next_step_at, call.version) == (
            "ringing",
            {"k": 1},
            "answer",
            OLD_TIME,
            2,
        )
        events = await store.list_events(account_sid, call_sid)
        assert [(e.sequence, e.state, e.attempts) for e in events] == [
            (1, "delivered", 2),
            (2, "pending", 0),
        ]
        assert [a.http_status for a in events[0].history] == [500, 200]
        remembered = await store.get_idempotent_create(account_sid, "key-1", OLD_TIME)
        assert remembered is not None and remembered.call_sid == call_sid
        # The old work goes on under the new code: the due step and the pending event.
        now = datetime.now(UTC)
        later = now + timedelta(seconds=30)
        assert [c.call_sid for c in await store.claim_due_calls("me", now, later, 10)] == [call_sid]
        assert [e.sequence for e in await store.claim_due_events("me", now, later, 10)] == [2]
    finally:
        await store.close()


# -- claims: one instance per step, leases that run out, in order per call --


async def a_ringing_call(store: Store, account_sid: str, due: datetime) -> CallRecord:
    call = replace(
        a_call(account_sid, "CA" + secrets.token_hex(16)), next_step="ring", next_step_at=due
    )
    await store.create_call(call)
    return call


async def test_a_claimed_step_is_nobody_elses_until_its_lease_ends(database_url: str) -> None:
    store = open_store(database_url)
    await store.open()
    try:
        account, _ = await create_account(store, "a")
        now = datetime.now(UTC)
        call = await a_ringing_call(store, account.account_sid, now)
        lease = now + timedelta(seconds=10)
        assert [c.call_sid for c in await store.claim_due_calls("one", now, lease, 10)] == [
            call.call_sid
        ]
        assert await store.claim_due_calls("two", now, lease, 10) == []
        # The holder seems to wait: the next look is when the lease ends, not now.
        assert await store.next_due_time() == lease
        # "one" dies: once its lease has run out, "two" takes the step over.
        after = lease + timedelta(milliseconds=1)
        taken = await store.claim_due_calls("two", after, after + timedelta(seconds=10), 10)
        assert [c.call_sid for c in taken] == [call.call_sid]
        # A write releases the claim, so the next step is due for anyone straight away.
        moved = replace(call, status="ringing", next_step_at=after)
        assert await store.update_call(taken[0], moved)
        assert [c.call_sid for c in await store.claim_due_calls("one", after, lease, 10)] == [
            call.call_sid
        ]
        await store.release_claims("one")
        assert len(await store.claim_due_calls("two", after, lease, 10)) == 1
    finally:
        await store.close()


async def test_events_are_claimed_one_at_a_time_per_call_in_order(database_url: str) -> None:
    store = open_store(database_url)
    await store.open()
    try:
        account, _ = await create_account(store, "a")
        now = datetime.now(UTC)
        call = await a_ringing_call(store, account.account_sid, now + timedelta(hours=1))
        for status in ("trying", "ringing"):
            current = await store.get_call(account.account_sid, call.call_sid)
            assert current is not None
            event = NewEvent(status, {"s": status}, "https://example.com/e", "POST", None, now)
            changed = replace(current, status=status, event_count=current.event_count + 1)
            assert await store.update_call(current, changed, event)
        lease = now + timedelta(seconds=10)
        first = await store.claim_due_events("one", now, lease, 10)
        assert [e.sequence for e in first] == [1], "the second waits for the first"
        assert await store.claim_due_events("two", now, lease, 10) == []
        attempt = DeliveryAttempt(now, 200, None, 1.0)
        assert not await store.record_attempt(first[0], attempt, "delivered", None, "two"), (
            "only the holder of the claim records its attempt"
        )
        assert await store.record_attempt(first[0], attempt, "delivered", None, "one")
        second = await store.claim_due_events("two", now, lease, 10)
        assert [e.sequence for e in second] == [2]
    finally:
        await store.close()


async def test_concurrent_claimers_never_share_a_step(database_url: str) -> None:
    stores = [open_store(database_url) for _ in range(3)]
    for store in stores:
        await store.open()
    try:
        account, _ = await create_account(stores[0], "a")
        now = datetime.now(UTC)
        created = {
            (await a_ringing_call(stores[0], account.account_sid, now)).call_sid for _ in range(60)
        }
        lease = now + timedelta(seconds=30)

        async def claimer(store: Store, owner: str) -> list[str]:
            got: list[str] = []
            for _ in range(10):
                got += [c.call_sid for c in await store.claim_due_calls(owner, now, lease, 7)]
                await asyncio.sleep(0)
            return got

        results = await asyncio.gather(
            *(claimer(store, f"owner-{n}-{m}") for n, store in enumerate(stores) for m in range(2))
        )
    finally:
        for store in stores:
            await store.close()
    claimed = [sid for result in results for sid in result]
    assert sorted(claimed) == sorted(created), "each call claimed exactly once"

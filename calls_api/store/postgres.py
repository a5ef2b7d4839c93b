"""The PostgreSQL store: psycopg 3 with a pool of connections, shared by several instances.

Every operation gets at most `timeout` seconds (a connection from the pool included); a
database that cannot be reached, or answers too slowly, is StoreUnavailable, so a request
is a 503 instead of a hang, and the pool reconnects by itself once the database is back.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool

from calls_api.store import StoreUnavailable
from calls_api.store.migrations import MIGRATIONS
from calls_api.store.sql import SQLStore

T = TypeVar("T")
SCHEMES = ("postgresql://", "postgres://")


def _sql(statement: str) -> str:
    """The shared queries use `?`; psycopg wants `%s`."""
    return statement.replace("?", "%s")


@contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        raise StoreUnavailable(f"the database is not usable: {exc}") from exc
    except TimeoutError as exc:
        raise StoreUnavailable("the database did not answer in time") from exc


class _PostgresTransaction:
    def __init__(self, conn: psycopg.AsyncConnection[tuple[Any, ...]]) -> None:
        self.conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = await self.conn.execute(_sql(sql), tuple(params))
        return cursor.rowcount

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = await self.conn.execute(_sql(sql), tuple(params))
        return await cursor.fetchall()


class PostgresStore(SQLStore):
    """Store on a PostgreSQL database; the schema is the first of the connection's
    search_path (the database's default, `public`, unless the URL says otherwise)."""

    claim_lock = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, *, timeout: float = 5.0, pool_size: int = 10) -> None:
        if not url.startswith(SCHEMES):
            raise ValueError(f"a PostgreSQL URL looks like postgresql://user@host/db, not {url!r}")
        self.url = url
        self.timeout = timeout
        self.pool_size = pool_size
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[tuple[Any, ...]]] | None = None
        self._abandoned: set[asyncio.Future[Any]] = set()

    async def open(self) -> None:
        if self._pool is not None:
            return
        pool: AsyncConnectionPool[psycopg.AsyncConnection[tuple[Any, ...]]] = AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=self.pool_size,
            open=False,
            timeout=self.timeout,
            kwargs={"autocommit": True, "connect_timeout": max(1, math.ceil(self.timeout))},
            name="calls-api",
        )
        try:
            with _unavailable():
                async with asyncio.timeout(self.timeout * 2):
                    await pool.open(wait=True, timeout=self.timeout)
                    async with pool.connection() as conn:
                        await migrate(conn)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> AsyncConnectionPool[psycopg.AsyncConnection[tuple[Any, ...]]]:
        if self._pool is None:
            raise StoreUnavailable("the store is not open")
        return self._pool

    # -- what SQLStore needs --

    async def run(self, work: Callable[[_PostgresTransaction], Awaitable[T]]) -> T:
        async def in_transaction() -> T:
            async with self.pool.connection() as conn, conn.transaction():
                return await work(_PostgresTransaction(conn))

        return await self._bounded(in_transaction)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async def query() -> list[tuple[Any, ...]]:
            async with self.pool.connection() as conn:
                cursor = await conn.execute(_sql(sql), tuple(params))
                return await cursor.fetchall()

        return await self._bounded(query)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        async def statement() -> int:
            async with self.pool.connection() as conn:
                cursor = await conn.execute(_sql(sql), tuple(params))
                return cursor.rowcount

        return await self._bounded(statement)

    async def _bounded(self, operation: Callable[[], Awaitable[T]]) -> T:
        """The operation, or StoreUnavailable after `timeout` seconds. A late operation is
        left to end in the background: psycopg's own clean-up (cancelling the query on the
        server) may wait on a silent network far longer than the caller should."""
        self.pool  # noqa: B018 - raises StoreUnavailable when the store is closed
        task = asyncio.ensure_future(operation())
        try:
            with _unavailable():
                async with asyncio.timeout(self.timeout):
                    return await asyncio.shield(task)
        except StoreUnavailable:
            if not task.done():
                task.cancel()
                self._abandoned.add(task)
                task.add_done_callback(self._forget)
            raise
        except asyncio.CancelledError:
            task.cancel()
            raise

    def _forget(self, task: asyncio.Future[Any]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: it was reported as StoreUnavailable already

    def time_param(self, moment: datetime) -> datetime:
        return moment.astimezone(UTC)

    def time_value(self, stored: Any) -> datetime:
        assert isinstance(stored, datetime)
        return stored.astimezone(UTC)

    def is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.errors.UniqueViolation)


async def migrate(conn: psycopg.AsyncConnection[Any], up_to: int | None = None) -> None:
    """Apply the missing migrations, each in its own transaction. An advisory lock makes
    instances that start together take turns: the first applies, the others find it done."""
    lock = (
        "SELECT pg_advisory_xact_lock(hashtext('calls-api migrations ' || "
        "coalesce(current_schema(), '')))"
    )
    async with conn.transaction():
        await conn.execute(lock)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
        )
    for migration in MIGRATIONS:
        if up_to is not None and migration.version > up_to:
            break
        async with conn.transaction():
            await conn.execute(lock)
            cursor = await conn.execute(
                "SELECT 1 FROM schema_migrations WHERE version = %s", (migration.version,)
            )
            if await cursor.fetchone() is not None:
                continue
            for statement in migration.statements("postgresql"):
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                (migration.version, migration.name, datetime.now(UTC)),
            )

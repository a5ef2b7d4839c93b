"""The embedded SQLite store.

Queries run on the event loop thread: on a local file they take microseconds, less than a
hop to a worker thread would cost. WAL lets readers proceed while one writer commits. As no
statement here ever waits on the loop, a transaction is never interleaved with another.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from calls_api.store import StoreUnavailable
from calls_api.store.migrations import MIGRATIONS
from calls_api.store.sql import SQLStore

T = TypeVar("T")


def format_time(moment: datetime) -> str:
    """Fixed-width UTC text, so that text order is time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@contextmanager
def _unavailable() -> Iterator[None]:
    """Turn the database's operational failures into StoreUnavailable."""
    try:
        yield
    except (sqlite3.OperationalError, sqlite3.DatabaseError) as exc:
        if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError):
            raise
        raise StoreUnavailable(f"the database is not usable: {exc}") from exc


class _SQLiteTransaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with _unavailable():
            return self.db.execute(sql, tuple(params)).rowcount

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with _unavailable():
            return self.db.execute(sql, tuple(params)).fetchall()


class SQLiteStore(SQLStore):
    """Store on one SQLite file (or :memory:)."""

    def __init__(self, path: str, *, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout
        self._db: sqlite3.Connection | None = None

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 5.0) -> SQLiteStore:
        """sqlite:///relative.db, sqlite:////absolute.db or sqlite:///:memory:."""
        prefix = "sqlite:///"
        if not url.startswith(prefix) or url == prefix:
            raise ValueError(f"a SQLite URL looks like sqlite:///var/calls.db, not {url!r}")
        return cls(url[len(prefix) :], timeout=timeout)

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreUnavailable("the store is not open")
        return self._db

    async def open(self) -> None:
        if self._db is not None:
            return
        with _unavailable():
            self._open()

    def _open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            migrate(db)
        except BaseException:
            db.close()
            raise
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- what SQLStore needs --

    async def run(self, work: Callable[[_SQLiteTransaction], Awaitable[T]]) -> T:
        db = self.db
        with _unavailable():
            db.execute("BEGIN IMMEDIATE")
        try:
            result = await work(_SQLiteTransaction(db))
            with _unavailable():
                db.execute("COMMIT")
        except BaseException:
            # SQLite may have rolled back already (disk full, I/O error); a failed COMMIT must
            # not leave the transaction open, and a failing ROLLBACK must not hide the cause.
            if db.in_transaction:
                with suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise
        return result

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with _unavailable():
            return self.db.execute(sql, tuple(params)).fetchall()

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with _unavailable():
            return self.db.execute(sql, tuple(params)).rowcount

    def time_param(self, moment: datetime) -> str:
        return format_time(moment)

    def time_value(self, stored: Any) -> datetime:
        return datetime.fromisoformat(stored)

    def is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError)


def migrate(db: sqlite3.Connection, up_to: int | None = None) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    applied = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
    for migration in MIGRATIONS:
        if migration.version in applied or (up_to is not None and migration.version > up_to):
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in migration.statements("sqlite"):
                db.execute(statement)
            db.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, format_time(datetime.now(UTC))),
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

"""The embedded SQLite store.

Queries run on the event loop thread: on a local file they take microseconds, less than a
hop to a worker thread would cost. WAL lets readers proceed while one writer commits.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from calls_api.store import StoreUnavailable
from calls_api.store.migrations import MIGRATIONS
from calls_api.store.records import Account, ApiKey, CallRecord

P = ParamSpec("P")
R = TypeVar("R")

_CALL_COLUMNS = (
    "call_sid, account_sid, from_number, to_number, status, direction, answer_url, event_url, "
    "event_method, timeout, time_limit, tag, headers, date_created, date_updated, start_time, "
    "end_time, duration"
)


def format_time(moment: datetime) -> str:
    """Fixed-width UTC text, so that text order is time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _unavailable(function: Callable[P, R]) -> Callable[P, R]:
    """Turn the database's operational failures into StoreUnavailable."""

    @wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except (sqlite3.OperationalError, sqlite3.DatabaseError) as exc:
            if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError):
                raise
            raise StoreUnavailable(f"the database is not usable: {exc}") from exc

    return wrapper


class SQLiteStore:
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
        self._open()

    @_unavailable
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
            _migrate(db)
        except BaseException:
            db.close()
            raise
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @_unavailable
    def _scalar(self, sql: str, *params: Any) -> Any:
        row = self.db.execute(sql, params).fetchone()
        return None if row is None else row[0]

    async def ping(self) -> None:
        self._scalar("SELECT 1")

    async def schema_version(self) -> int:
        return int(self._scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"))

    async def count_accounts(self) -> int:
        return int(self._scalar("SELECT COUNT(*) FROM accounts"))

    @_unavailable
    def _execute(self, sql: str, params: tuple[Any, ...]) -> int:
        return self.db.execute(sql, params).rowcount

    @_unavailable
    def _fetchone(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self.db.execute(sql, params).fetchone()
        return row

    async def create_account(self, account: Account) -> None:
        self._execute(
            "INSERT INTO accounts (account_sid, name, date_created) VALUES (?, ?, ?)",
            (account.account_sid, account.name, format_time(account.date_created)),
        )

    async def get_account(self, account_sid: str) -> Account | None:
        row = self._fetchone(
            "SELECT account_sid, name, date_created FROM accounts WHERE account_sid = ?",
            (account_sid,),
        )
        if row is None:
            return None
        return Account(account_sid=row[0], name=row[1], date_created=datetime.fromisoformat(row[2]))

    async def add_api_key(self, key: ApiKey) -> None:
        self._execute(
            "INSERT INTO api_keys (prefix, account_sid, key_hash, date_created) "
            "VALUES (?, ?, ?, ?)",
            (key.prefix, key.account_sid, key.key_hash, format_time(key.date_created)),
        )

    async def get_api_key(self, prefix: str) -> ApiKey | None:
        row = self._fetchone(
            "SELECT prefix, account_sid, key_hash, date_created, revoked_at "
            "FROM api_keys WHERE prefix = ?",
            (prefix,),
        )
        if row is None:
            return None
        return ApiKey(
            prefix=row[0],
            account_sid=row[1],
            key_hash=row[2],
            date_created=datetime.fromisoformat(row[3]),
            revoked_at=parse_time(row[4]),
        )

    async def revoke_api_key(self, prefix: str) -> bool:
        changed = self._execute(
            "UPDATE api_keys SET revoked_at = ? WHERE prefix = ? AND revoked_at IS NULL",
            (format_time(datetime.now(UTC)), prefix),
        )
        return changed > 0

    async def create_call(self, call: CallRecord) -> None:
        self._execute(
            f"INSERT INTO calls ({_CALL_COLUMNS}) "  # noqa: S608 - a constant column list
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                call.call_sid,
                call.account_sid,
                call.from_,
                call.to,
                call.status,
                call.direction,
                call.answer_url,
                call.event_url,
                call.event_method,
                call.timeout,
                call.time_limit,
                None if call.tag is None else json.dumps(call.tag),
                None if call.headers is None else json.dumps(call.headers),
                format_time(call.date_created),
                format_time(call.date_updated),
                None if call.start_time is None else format_time(call.start_time),
                None if call.end_time is None else format_time(call.end_time),
                call.duration,
            ),
        )

    async def get_call(self, account_sid: str, call_sid: str) -> CallRecord | None:
        row = self._fetchone(
            f"SELECT {_CALL_COLUMNS} FROM calls "  # noqa: S608 - a constant column list
            "WHERE call_sid = ? AND account_sid = ?",
            (call_sid, account_sid),
        )
        return None if row is None else _call_from_row(row)


def _call_from_row(row: tuple[Any, ...]) -> CallRecord:
    return CallRecord(
        call_sid=row[0],
        account_sid=row[1],
        from_=row[2],
        to=row[3],
        status=row[4],
        direction=row[5],
        answer_url=row[6],
        event_url=row[7],
        event_method=row[8],
        timeout=row[9],
        time_limit=row[10],
        tag=None if row[11] is None else json.loads(row[11]),
        headers=None if row[12] is None else json.loads(row[12]),
        date_created=datetime.fromisoformat(row[13]),
        date_updated=datetime.fromisoformat(row[14]),
        start_time=parse_time(row[15]),
        end_time=parse_time(row[16]),
        duration=row[17],
    )


def _migrate(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    applied = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
    for migration in MIGRATIONS:
        if migration.version in applied:
            continue
        with _transaction(db):
            for statement in migration.statements:
                db.execute(statement)
            db.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, format_time(datetime.now(UTC))),
            )


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
